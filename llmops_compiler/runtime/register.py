"""Register a trained model directory as a version in the MLflow model registry and alias it ``candidate``.

``python -m llmops_compiler.runtime.register --model-dir DIR --registered-model NAME --metrics FILE
--spec-hash H --git-commit SHA --dataset-uri URI [--alias candidate] [--stable-alias stable]
--mlflow-tracking-uri URI [--run-id-file FILE] [--mlflow-experiment NAME] [--version-out FILE]``

* The model directory is logged as artifact path ``registered/<digest>`` of the run named in
  ``--run-id-file`` (the tune run; a new run in ``--mlflow-experiment`` when the file is absent or empty),
  keyed by the directory's digest so that what is registered is exactly ``--model-dir`` (the quantized
  model, say, rather than the adapter ``tune`` logged as ``model``); an identical upload is not repeated.
* A model version is created under NAME from ``<run artifact uri>/registered/<digest>`` with tags
  ``llmops.spec_hash``, ``llmops.git_commit``, ``llmops.dataset_uri``, ``llmops.model_digest`` (sha256
  over the directory's files) and ``metric.<name>`` for each metric in ``--metrics`` (the ``evaluate``
  output ``{"metrics": {...}}`` or a flat ``{name: number}`` object).
* Idempotent: a version of NAME from the same run, or with the same spec hash and model digest, is reused
  (its alias is set again) instead of creating another one.
* Sets ``--alias`` (default ``candidate``) on the version. Setting the Model's stable alias
  (``--stable-alias``, default ``stable``; compared ignoring case) is refused (exit 2): promotion to stable
  is the rollout's job. So are aliases MLflow would refuse or misread (:func:`alias_problem`): ``latest``
  and ``v<number>`` are reserved, names hold only alphanumerics, ``_`` and ``-``, at most 255 characters.

Prints the version number on stdout and writes it to ``--version-out``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_compiler.runtime._common import (
    DEFAULT_EXPERIMENT,
    ArgParser,
    UsageError,
    ensure_experiment,
    mlflow_client,
    read_run_id,
    require_dir,
    require_file,
    run_step,
    write_text,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

STEP = "register"
DEFAULT_STABLE_ALIAS = "stable"
TAG_SPEC_HASH = "llmops.spec_hash"
TAG_GIT_COMMIT = "llmops.git_commit"
TAG_DATASET_URI = "llmops.dataset_uri"
TAG_MODEL_DIGEST = "llmops.model_digest"
REGISTERED_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
"""Registered-model names this step accepts: what the compiler allows, and what `models:/NAME/VERSION` URIs and
MLflow's search filters carry without quoting."""
MODEL_MARKERS = ("config.json", "adapter_config.json")
"""A transformers model folder has ``config.json``; a peft adapter folder has ``adapter_config.json``."""
METRIC_TAG_PREFIX = "metric."
# MLflow's own alias rules (mlflow/utils/validation.py: `_validate_model_alias_name` and
# `_validate_model_alias_name_reserved`), checked here before anything is uploaded.
_ALIAS_CHARACTERS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
LATEST_ALIAS = "latest"
MAX_ALIAS_LENGTH = 255


@dataclass
class RegisterConfig:
    model_dir: str
    registered_model: str
    metrics: str
    spec_hash: str
    git_commit: str
    dataset_uri: str
    mlflow_tracking_uri: str
    alias: str = "candidate"
    stable_alias: str = DEFAULT_STABLE_ALIAS
    run_id_file: str | None = None
    mlflow_experiment: str = DEFAULT_EXPERIMENT
    version_out: str | None = None


@dataclass
class RegisterResult:
    version: str
    run_id: str
    created: bool
    source: str


def load_metrics(path: str | Path) -> dict[str, float]:
    """Numeric metrics from an ``evaluate`` metrics file (``{"metrics": {...}}``) or a flat JSON object."""
    p = require_file(path, "--metrics file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"--metrics file {p} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        data = data["metrics"]
    if not isinstance(data, dict):
        raise UsageError(f"--metrics file {p} must hold a JSON object")
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # lists (losses), strings (method) etc. are not registry metrics
        if not math.isfinite(value):
            raise UsageError(f"--metrics file {p}: metric {key!r} is {value}, not a finite number")
        out[str(key)] = float(value)
    return out


def dir_digest(path: str | Path) -> str:
    """sha256 over the relative paths and contents of every file under ``path`` (sorted)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode("utf-8") + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def alias_problem(alias: str) -> str | None:
    """Why MLflow would refuse ``alias`` as a registered-model alias, or ``None`` when it is fine.

    Mirrors MLflow's checks (``mlflow/utils/validation.py``): not empty; only alphanumerics, ``_`` and ``-``
    (``^[\\w\\-]*$``); at most 255 characters; ``latest`` in any case is reserved (it resolves to the newest
    version), and so is ``v<number>`` (``^[vV]\\d+$``), which names a version.
    """
    if not alias:
        return "an alias cannot be empty"
    if not _ALIAS_CHARACTERS.match(alias):
        return "MLflow aliases may only contain alphanumerics, underscores (_) and dashes (-)"
    if len(alias) > MAX_ALIAS_LENGTH:
        return f"MLflow aliases are at most {MAX_ALIAS_LENGTH} characters long"
    if alias.lower() == LATEST_ALIAS:
        return "MLflow reserves 'latest' (in any case) for the newest version"
    if _VERSION_ALIAS.match(alias):
        return "MLflow reserves v<number> aliases, which name a version"
    return None


def validate(cfg: RegisterConfig) -> None:
    """Cheap checks before any import or upload; raises :class:`UsageError` (exit 2)."""
    for what, alias in (("stable alias", cfg.stable_alias), ("alias", cfg.alias)):
        problem = alias_problem(alias)
        if problem is not None:
            raise UsageError(f"invalid {what} '{alias}': {problem}")
    if cfg.alias.lower() == cfg.stable_alias.lower():
        raise UsageError(
            f"refusing to set alias '{cfg.alias}': it is the stable alias (--stable-alias '{cfg.stable_alias}'), "
            "and promotion to stable is the rollout's job; register sets the candidate alias"
        )
    if not REGISTERED_MODEL_NAME.fullmatch(cfg.registered_model):
        raise UsageError(f"--registered-model {cfg.registered_model!r}: use letters, digits, '.', '_' and '-' "
                         "(a name `models:/NAME/VERSION` can carry, at most 256 characters)")
    if not cfg.mlflow_tracking_uri:
        raise UsageError("--mlflow-tracking-uri is required")
    require_dir(cfg.model_dir, "--model-dir")
    if not any(Path(cfg.model_dir).iterdir()):
        raise UsageError(f"--model-dir is empty: {cfg.model_dir}")
    if not any((Path(cfg.model_dir) / marker).is_file() for marker in MODEL_MARKERS):
        raise UsageError(f"--model-dir {cfg.model_dir} holds no model: neither {' nor '.join(MODEL_MARKERS)}")
    if cfg.version_out and Path(cfg.version_out).is_dir():
        raise UsageError(f"--version-out {cfg.version_out} is a directory")


def _existing_version(client: MlflowClient, name: str, run_id: str | None, spec_hash: str, digest: str) -> Any | None:
    """A version to reuse: the same files (digest) from the same run (a retried step), or the same files and
    spec hash; other files are a new version even from the same run."""
    versions = client.search_model_versions(f"name = '{name}'")
    for mv in versions:
        if run_id and mv.run_id == run_id and (mv.tags or {}).get(TAG_MODEL_DIGEST) == digest:
            return mv
    for mv in versions:
        tags = mv.tags or {}
        if tags.get(TAG_SPEC_HASH) == spec_hash and tags.get(TAG_MODEL_DIGEST) == digest:
            return mv
    return None


def register(cfg: RegisterConfig) -> RegisterResult:
    """Register ``cfg.model_dir`` (idempotently) and set the alias; returns the version."""
    validate(cfg)
    metrics = load_metrics(cfg.metrics)
    digest = dir_digest(cfg.model_dir)

    from mlflow.exceptions import MlflowException

    client = mlflow_client(cfg.mlflow_tracking_uri)
    name = cfg.registered_model
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name, tags={"llmops.managed": "true"})
        except MlflowException:
            client.get_registered_model(name)  # created concurrently by another step

    run_id = read_run_id(cfg.run_id_file)
    if run_id is not None:
        try:
            client.get_run(run_id)
        except MlflowException:
            raise UsageError(f"run id '{run_id}' from {cfg.run_id_file} does not exist in the tracking store") from None

    existing = _existing_version(client, name, run_id, cfg.spec_hash, digest)
    created = existing is None
    if existing is not None:
        mv = existing
    else:
        created_run = run_id is None
        if run_id is None:
            exp_id = ensure_experiment(client, cfg.mlflow_experiment)
            run_id = client.create_run(exp_id, tags={"llmops.step": STEP}).info.run_id
        artifact_path = f"registered/{digest[:16]}"
        if not client.list_artifacts(run_id, artifact_path):
            client.log_artifacts(run_id, cfg.model_dir, artifact_path)
        if created_run:
            client.set_terminated(run_id, "FINISHED")
        source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
        tags = {
            TAG_SPEC_HASH: cfg.spec_hash,
            TAG_GIT_COMMIT: cfg.git_commit,
            TAG_DATASET_URI: cfg.dataset_uri,
            TAG_MODEL_DIGEST: digest,
            **{f"{METRIC_TAG_PREFIX}{k}": repr(v) for k, v in sorted(metrics.items())},
        }
        mv = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    version = str(mv.version)
    client.set_registered_model_alias(name, cfg.alias, version)
    if cfg.version_out:
        write_text(cfg.version_out, version)
    return RegisterResult(version=version, run_id=str(mv.run_id or run_id), created=created, source=str(mv.source))


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True, help="adapter or full model directory to register")
    p.add_argument("--registered-model", required=True, help="registered model name")
    p.add_argument("--metrics", required=True, help="evaluate's metrics JSON (or a flat {name: value} object)")
    p.add_argument("--spec-hash", required=True)
    p.add_argument("--git-commit", required=True)
    p.add_argument("--dataset-uri", required=True)
    p.add_argument("--alias", default="candidate", help="alias to set on the version (never the stable alias)")
    p.add_argument(
        "--stable-alias",
        default=DEFAULT_STABLE_ALIAS,
        help="the Model's stable alias (serving.stableAlias), which register never sets",
    )
    p.add_argument("--mlflow-tracking-uri", required=True)
    p.add_argument("--mlflow-experiment", default=DEFAULT_EXPERIMENT, help="used only when no run id is given")
    p.add_argument("--run-id-file", help="file holding the run id of the training run")
    p.add_argument("--version-out", help="file receiving the version number")
    return p


def config_from_args(argv: list[str] | None) -> RegisterConfig:
    a = build_parser().parse_args(argv)
    return RegisterConfig(
        model_dir=a.model_dir,
        registered_model=a.registered_model,
        metrics=a.metrics,
        spec_hash=a.spec_hash,
        git_commit=a.git_commit,
        dataset_uri=a.dataset_uri,
        mlflow_tracking_uri=a.mlflow_tracking_uri,
        alias=a.alias,
        stable_alias=a.stable_alias,
        run_id_file=a.run_id_file,
        mlflow_experiment=a.mlflow_experiment,
        version_out=a.version_out,
    )


def main(argv: list[str] | None = None) -> int:
    import sys

    def body() -> int:
        cfg = config_from_args(argv)
        res = register(cfg)
        verb = "registered" if res.created else "reused existing"
        print(
            f"{STEP}: {verb} {cfg.registered_model} version {res.version} (alias {cfg.alias})",
            file=sys.stderr,
        )
        print(res.version)
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
