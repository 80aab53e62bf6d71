"""Retrain guard: the first step of ``tune-<model>``. Decides whether this retrain may run at all.

``python -m llmops_compiler.runtime.guard --registered-model NAME --experiment NAME --cooldown-seconds N
--stable-alias A --candidate-alias A --mlflow-tracking-uri URI [--in-flight-candidate V] [--reason TEXT]
[--alert NAME] [--force true|false] [--now EPOCH] --proceed-out FILE``

A retrain is skipped (``proceed`` = ``false``, exit 0, the reason on stdout and in the workflow's log) when

1. a candidate of the model is in flight: the compiled RolloutState says so (``--in-flight-candidate``, what
   git says), or MLflow's candidate alias names a version other than the stable alias's (what the registry
   says, so a rollout proposed after the last sync counts too) — retraining under a rollout would replace the
   version being judged; or
2. the model's last retrain started less than ``--cooldown-seconds`` ago (the Model's ``tuning.timeout``): a
   flapping alert (fire, resolve, fire) or a repeated notification starts no second retrain within the time
   one may take. The start of every retrain that proceeds is recorded as an MLflow run tagged
   ``llmops.guard=started`` in the model's experiment; that record is what the next guard looks up.

``--force true`` (``argo submit --from workflowtemplate/tune-<model> -p force=true``) skips both checks, for a
person who knows. Exit 3 when MLflow cannot be reached (the workflow retries the step); 2 on bad arguments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llmops_compiler.runtime._common import (
    ArgParser,
    RuntimeStepError,
    ensure_experiment,
    mlflow_client,
    run_step,
    write_text,
)

STEP = "guard"
TAG_GUARD = "llmops.guard"
TAG_REASON = "llmops.reason"
TAG_ALERT = "llmops.alert"
STARTED = "started"


@dataclass(frozen=True)
class Decision:
    """Whether the retrain proceeds, and why."""

    proceed: bool
    reason: str


def decide(tracking_uri: str, registered_model: str, experiment: str, cooldown_seconds: int, stable_alias: str,
           candidate_alias: str, in_flight_candidate: str = "", reason: str = "", alert: str = "",
           force: bool = False, now: float | None = None) -> Decision:
    """Apply the rules of the module docstring; records the start when the retrain proceeds.

    Raises :class:`RuntimeStepError` when MLflow cannot be reached."""
    now = time.time() if now is None else now
    if force:
        return _start(tracking_uri, experiment, registered_model, reason or "forced", alert, now,
                      "forced: the cooldown and rollout checks were skipped")
    if in_flight_candidate:
        return Decision(False, f"skipped: candidate v{in_flight_candidate} of {registered_model} is being rolled "
                               "out (RolloutState); a retrain would replace the version under analysis")
    try:
        client = mlflow_client(tracking_uri)
        candidate = _alias_version(client, registered_model, candidate_alias)
        stable = _alias_version(client, registered_model, stable_alias)
        if candidate is not None and candidate != stable:
            return Decision(False, f"skipped: candidate v{candidate} of {registered_model} is in flight "
                                   f"(alias `{candidate_alias}`; stable is {f'v{stable}' if stable else 'unset'})")
        experiment_id = ensure_experiment(client, experiment)
        since = int((now - cooldown_seconds) * 1000)
        recent = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_GUARD}` = '{STARTED}' and attributes.start_time >= {since}",
            order_by=["attributes.start_time DESC"], max_results=1,
        )
    except RuntimeStepError:
        raise
    except Exception as error:  # MLflow's client raises many types for one outage
        raise RuntimeStepError(f"MLflow at {tracking_uri} cannot be reached: {error}") from error
    if recent:
        started = recent[0].info.start_time / 1000
        ago = int(now - started)
        return Decision(False, f"skipped: the last retrain of {registered_model} started {ago}s ago "
                               f"({recent[0].data.tags.get(TAG_REASON, 'no reason recorded')}), within the "
                               f"{cooldown_seconds}s cooldown (the Model's tuning.timeout)")
    return _start(tracking_uri, experiment, registered_model, reason, alert, now, "proceeding")


def _alias_version(client: object, registered_model: str, alias: str) -> str | None:
    """The version an alias names, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(registered_model, alias).version)  # type: ignore[attr-defined]
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _start(tracking_uri: str, experiment: str, registered_model: str, reason: str, alert: str, now: float,
           why: str) -> Decision:
    """Record that a retrain starts now, as an MLflow run the next guard finds."""
    try:
        client = mlflow_client(tracking_uri)
        run = client.create_run(ensure_experiment(client, experiment), start_time=int(now * 1000),
                                tags={TAG_GUARD: STARTED, TAG_REASON: reason[:500], TAG_ALERT: alert[:250],
                                      "mlflow.runName": f"retrain-start-{registered_model}"})
        client.set_terminated(run.info.run_id, end_time=int(now * 1000))
    except Exception as error:
        raise RuntimeStepError(f"MLflow at {tracking_uri} cannot be reached: {error}") from error
    return Decision(True, why)


def build_parser() -> ArgParser:
    """The command line of this step (the compiled workflows pass exactly these flags)."""
    parser = ArgParser(prog="python -m llmops_compiler.runtime.guard", description=__doc__.splitlines()[0])
    parser.add_argument("--registered-model", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--cooldown-seconds", type=int, required=True)
    parser.add_argument("--stable-alias", default="stable")
    parser.add_argument("--candidate-alias", default="candidate")
    parser.add_argument("--in-flight-candidate", default="", help="version the RolloutState has in flight")
    parser.add_argument("--reason", default="")
    parser.add_argument("--alert", default="")
    parser.add_argument("--force", default="false", choices=["true", "false"])
    parser.add_argument("--now", type=float, help="epoch seconds (tests)")
    parser.add_argument("--mlflow-tracking-uri", required=True)
    parser.add_argument("--proceed-out", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def body() -> int:
        args = parser.parse_args(argv)
        if args.cooldown_seconds < 0:
            parser.error("--cooldown-seconds must not be negative")
        decision = decide(args.mlflow_tracking_uri, args.registered_model, args.experiment, args.cooldown_seconds,
                          args.stable_alias, args.candidate_alias, args.in_flight_candidate, args.reason,
                          args.alert, args.force == "true", args.now)
        write_text(args.proceed_out, "true" if decision.proceed else "false")
        print(f"{STEP}: {decision.reason}")
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
