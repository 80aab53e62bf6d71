"""Istio traffic per RolloutPolicy and environment: a DestinationRule with ``stable`` and ``candidate`` subsets
(selected by the serving version label, a registered-version number from the RolloutState) and a VirtualService
for the current step.

| strategy    | route at step *n* (a candidate in flight)                                   |
| ----------- | --------------------------------------------------------------------------- |
| `canary`    | stable ``100 - w``, candidate ``w`` (the step's weight)                      |
| `abTest`    | requests matching the header or cookie → candidate; the rest → stable        |
| `shadow`    | all → stable, ``mirrorPercent`` of them mirrored to the candidate            |
| `blueGreen` | all → candidate at weight 100, all → stable at weight 0                     |

Without a candidate in flight, everything goes to stable. Weights are whole percents that sum to 100 (Istio
accepts other sums since 1.15, but a reviewer reads percents). Every weight change is a commit of the
RolloutState and of this output: no controller rewrites these objects at run time, so ArgoCD never sees them
drift (the problem of Argo Rollouts and Flagger, see the README).
"""

from __future__ import annotations

import json
from typing import cast

from .. import conventions, platform
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import ModelSpec, RolloutPolicySpec
from ..specs.rollout import EnvironmentState
from .base import Body, Resource, metadata, resource
from .serving import tracks

COOKIE_PATTERN = "^(.*?;\\s*)?{name}={value}(;.*)?$"


def host(view: EnvironmentView, model: ResolvedSpec[ModelSpec]) -> str:
    """The fully qualified name of the model's Service."""
    serving = model.spec.serving
    assert serving is not None
    return f"{serving.service.name}.{serving.service.namespace or view.namespace}.svc.cluster.local"


def _destination(target: str, subset: str, port: int) -> Body:
    return {"host": target, "subset": subset, "port": {"number": port}}


def current_weight(policy: RolloutPolicySpec, state: EnvironmentState) -> int:
    """The candidate's share of requests at the current step, in percent (0 without a candidate in flight)."""
    if state.candidate is None or state.status not in ("progressing", "paused") or not policy.steps:
        return 0
    return policy.steps[min(state.step, len(policy.steps) - 1)].weight


def http_routes(view: EnvironmentView, model: ResolvedSpec[ModelSpec], policy: RolloutPolicySpec,
                state: EnvironmentState) -> list[Body]:
    """The VirtualService's HTTP routes for the current step (see the module docstring)."""
    serving = model.spec.serving
    assert serving is not None
    target, port = host(view, model), serving.service.port
    served = tracks(view, model)
    stable = _destination(target, conventions.TRACK_STABLE, port)
    candidate = _destination(target, conventions.TRACK_CANDIDATE, port)
    common: Body = {}
    if policy.timeout is not None:
        common["timeout"] = policy.timeout
    if policy.retries is not None:
        common["retries"] = {"attempts": 0} if policy.retries.attempts == 0 else {
            "attempts": policy.retries.attempts, "retryOn": policy.retries.retry_on,
            **({"perTryTimeout": policy.retries.per_try_timeout} if policy.retries.per_try_timeout else {})}
    if conventions.TRACK_CANDIDATE not in served:
        only = stable if conventions.TRACK_STABLE in served else candidate
        return [{"name": "stable", "route": [{"destination": only, "weight": 100}], **common}]
    if conventions.TRACK_STABLE not in served:  # the first version of a model: nothing to compare it with
        return [{"name": "candidate", "route": [{"destination": candidate, "weight": 100}], **common}]
    strategy = policy.strategy
    if strategy == "abTest":
        assert policy.match is not None
        if policy.match.header is not None:
            match = {"headers": {policy.match.header.name.lower(): {"exact": policy.match.header.value}}}
        else:
            assert policy.match.cookie is not None
            pattern = COOKIE_PATTERN.format(name=policy.match.cookie.name, value=policy.match.cookie.value)
            match = {"headers": {"cookie": {"regex": pattern}}}
        return [
            {"name": "candidate", "match": [match], "route": [{"destination": candidate, "weight": 100}], **common},
            {"name": "stable", "route": [{"destination": stable, "weight": 100}], **common},
        ]
    if strategy == "shadow":
        assert policy.mirror_percent is not None
        return [{"name": "stable", "route": [{"destination": stable, "weight": 100}],
                 "mirror": candidate, "mirrorPercentage": {"value": policy.mirror_percent}, **common}]
    weight = current_weight(policy, state)
    return [{"name": "canary" if strategy == "canary" else "blue-green",
             "route": [{"destination": stable, "weight": 100 - weight},
                       {"destination": candidate, "weight": weight}], **common}]


def rollout_annotation(policy: ResolvedSpec[RolloutPolicySpec], state: EnvironmentState) -> str:
    """Where the rollout stands, as JSON on the VirtualService: what `kubectl describe` shows, and what
    `llmops diff` reads to say a change in words ("prod: support-llm canary 10% → 25%")."""
    return json.dumps({
        "policy": policy.name,
        "strategy": policy.spec.strategy,
        "steps": [step.weight for step in policy.spec.steps],
        "state": state.model_dump(by_alias=True, exclude_none=True),
    }, sort_keys=True, separators=(",", ":"))


def virtual_service(view: EnvironmentView, model: ResolvedSpec[ModelSpec],
                    policy: ResolvedSpec[RolloutPolicySpec]) -> Body:
    state = view.rollout_state(policy.name)
    return {
        "apiVersion": platform.istio_api_version(view.project.spec.platform),
        "kind": "VirtualService",
        "metadata": metadata(view, model.name, policy, component="traffic",
                             extra_annotations={conventions.ANNOTATION_ROLLOUT: rollout_annotation(policy, state)}),
        "spec": {"hosts": [host(view, model)], "http": http_routes(view, model, policy.spec, state)},
    }


def destination_rule(view: EnvironmentView, model: ResolvedSpec[ModelSpec],
                     policy: ResolvedSpec[RolloutPolicySpec]) -> Body:
    serving = model.spec.serving
    assert serving is not None
    subsets = [{"name": track, "labels": {serving.version_label: str(version)}}
               for track, version in sorted(tracks(view, model).items(), key=lambda item: item[0] != "stable")]
    return {
        "apiVersion": platform.istio_api_version(view.project.spec.platform),
        "kind": "DestinationRule",
        "metadata": metadata(view, model.name, policy, component="traffic"),
        "spec": {"host": host(view, model), "subsets": subsets},
    }


def traffic(view: EnvironmentView) -> list[Resource]:
    """VirtualService and DestinationRule of every RolloutPolicy whose model serves something here."""
    resources = []
    for policy in view.rollout_policies():
        model = cast(ResolvedSpec[ModelSpec] | None, view.get("Model", policy.spec.model))
        if model is None or model.spec.serving is None or not tracks(view, model):
            continue
        state = view.get("RolloutState", policy.name)
        source = policy.source if state is None else f"{policy.source} and {state.source}"
        resources.append(resource(view, destination_rule(view, model, policy), source))
        resources.append(resource(view, virtual_service(view, model, policy), source))
    return resources
