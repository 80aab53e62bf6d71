"""Serving workloads and Istio traffic for every rollout strategy, hand-checked and strictly validated against
cloudcoil's Istio models and the Kubernetes schema (``llmops_compiler.strict``, the `--strict` check)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from monitoring_support import build, find, one, project_yaml, write_specs

from llmops_compiler import conventions
from llmops_compiler.emit import Resource
from llmops_compiler.strict import validate_strict
from llmops_compiler.targets.istio import COOKIE_PATTERN

ENV, NAMESPACE = "dev", "llm-dev"
HOST = f"chat.{NAMESPACE}.svc.cluster.local"
IMAGE = "ghcr.io/acme/server@sha256:" + "ab" * 32

MODEL = f"""\
apiVersion: llmops.dev/v1alpha1
kind: Model
metadata:
  name: chat
spec:
  baseModel: s3://models/base/chat
  registeredModel: chat-registered
  serving:
    service: {{name: chat, port: 80}}
    versionLabel: version
    deployment:
      image: {IMAGE}
      args: [--model, "{{{{modelDir}}}}", --served-model-name, "{{{{model}}}}", --port, "{{{{port}}}}"]
      port: 8000
      replicas: 2
"""


def policy(strategy: str, extra: str) -> str:
    return f"""\
apiVersion: llmops.dev/v1alpha1
kind: RolloutPolicy
metadata:
  name: chat
spec:
  model: chat
  strategy: {strategy}
{extra}"""


def state(**fields: Any) -> str:
    lines = "".join(f"      {key}: {value}\n" for key, value in fields.items())
    return f"""\
apiVersion: llmops.dev/v1alpha1
kind: RolloutState
metadata:
  name: chat
spec:
  environments:
    {ENV}:
{lines}"""


def compile_project(tmp_path: Path, strategy: str, extra: str, **state_fields: Any) -> list[Resource]:
    documents = {"project.yaml": project_yaml([(ENV, NAMESPACE)]), "models/chat.yaml": MODEL,
                 "rollouts/chat.yaml": policy(strategy, extra)}  # fmt: skip
    if state_fields:
        documents["rollouts/chat.state.yaml"] = state(**state_fields)
    resources = build(write_specs(tmp_path, documents))
    for item in resources:
        if item.kind in ("VirtualService", "DestinationRule", "Deployment", "Service"):
            validate_strict(item.body)
    return resources


def routes(resources: list[Resource]) -> list[dict[str, Any]]:
    virtual_service = one(resources, "VirtualService", ENV, "chat").body
    assert virtual_service["spec"]["hosts"] == [HOST]
    return list(virtual_service["spec"]["http"])


def weights(route: dict[str, Any]) -> dict[str, int]:
    return {item["destination"]["subset"]: item["weight"] for item in route["route"]}


CANARY = "  steps: [{weight: 10}, {weight: 50}, {weight: 100}]\n  timeout: 30s\n" \
         "  retries: {attempts: 3, perTryTimeout: 10s, retryOn: 5xx}\n"


@pytest.mark.parametrize(("step", "stable", "candidate"), [(0, 90, 10), (1, 50, 50), (2, 0, 100)])
def test_canary_weights_follow_the_step(tmp_path: Path, step: int, stable: int, candidate: int) -> None:
    resources = compile_project(tmp_path, "canary", CANARY, stable=3, candidate=4, step=step, status="progressing")
    [route] = routes(resources)
    assert weights(route) == {"stable": stable, "candidate": candidate}  # both explicit, even at 0
    assert route["timeout"] == "30s"
    assert route["retries"] == {"attempts": 3, "perTryTimeout": "10s", "retryOn": "5xx"}
    assert all(item["destination"]["host"] == HOST and item["destination"]["port"] == {"number": 80}
               for item in route["route"])  # fmt: skip
    rule = one(resources, "DestinationRule", ENV, "chat").body["spec"]
    assert rule == {"host": HOST, "subsets": [{"name": "stable", "labels": {"version": "3"}},
                                              {"name": "candidate", "labels": {"version": "4"}}]}  # fmt: skip


def test_retries_turned_off_are_written_as_istio_accepts_them(tmp_path: Path) -> None:
    """Istio's webhook refuses `retryOn` or `perTryTimeout` beside `attempts: 0` (validateHTTPRetry)."""
    resources = compile_project(tmp_path, "canary", CANARY.replace("{attempts: 3, perTryTimeout: 10s, retryOn: 5xx}",
                                                                   "{attempts: 0}"),
                                stable=3, candidate=4, step=0, status="progressing")
    assert routes(resources)[0]["retries"] == {"attempts": 0}


def test_paused_rollout_keeps_its_weight_and_idle_sends_all_to_stable(tmp_path: Path) -> None:
    paused = compile_project(tmp_path / "p", "canary", CANARY, stable=3, candidate=4, step=1, status="paused")
    assert weights(routes(paused)[0]) == {"stable": 50, "candidate": 50}
    idle = compile_project(tmp_path / "i", "canary", CANARY, stable=4, status="promoted")
    [route] = routes(idle)
    assert weights(route) == {"stable": 100}
    assert one(idle, "DestinationRule", ENV, "chat").body["spec"]["subsets"] == [
        {"name": "stable", "labels": {"version": "4"}}]
    # without any state nothing is deployed yet: no traffic objects, no Deployments (the Service waits)
    empty = compile_project(tmp_path / "e", "canary", CANARY)
    assert find(empty, "VirtualService") == find(empty, "Deployment") == []


def test_ab_test_by_header_sends_matching_requests_to_the_candidate(tmp_path: Path) -> None:
    resources = compile_project(tmp_path, "abTest", "  steps: [{pause: 1h}]\n"
                                "  match: {header: {name: X-Llm-Variant, value: candidate}}\n",
                                stable=3, candidate=4, step=0, status="progressing")  # fmt: skip
    first, rest = routes(resources)
    # Istio matches header names lower-cased (Envoy normalises them), values exactly
    assert first["match"] == [{"headers": {"x-llm-variant": {"exact": "candidate"}}}]
    assert weights(first) == {"candidate": 100} and "match" not in rest and weights(rest) == {"stable": 100}


def test_ab_test_by_cookie_matches_the_cookie_anywhere_in_the_header(tmp_path: Path) -> None:
    resources = compile_project(tmp_path, "abTest", "  steps: [{pause: 1h}]\n"
                                "  match: {cookie: {name: variant, value: b}}\n",
                                stable=3, candidate=4, step=0, status="progressing")  # fmt: skip
    first, _ = routes(resources)
    pattern = first["match"][0]["headers"]["cookie"]["regex"]
    assert pattern == COOKIE_PATTERN.format(name="variant", value="b")
    # Envoy's RE2 matches the whole header value, as re.fullmatch does (the pattern uses no RE2-only syntax)
    for header in ("variant=b", "a=1; variant=b", "variant=b; c=2", "a=1;variant=b;c=2"):
        assert re.fullmatch(pattern, header), header
    for header in ("variant=bb", "xvariant=b", "a=variant=b", "variant=a; other=b", ""):
        assert not re.fullmatch(pattern, header), header


def test_shadow_mirrors_a_share_to_the_candidate_and_answers_from_stable(tmp_path: Path) -> None:
    resources = compile_project(tmp_path, "shadow", "  steps: [{pause: 2h}]\n  mirrorPercent: 12.5\n",
                                stable=3, candidate=4, step=0, status="progressing")  # fmt: skip
    [route] = routes(resources)
    assert weights(route) == {"stable": 100}
    assert route["mirror"] == {"host": HOST, "subset": "candidate", "port": {"number": 80}}
    assert route["mirrorPercentage"] == {"value": 12.5}


@pytest.mark.parametrize(("step", "stable", "candidate"), [(0, 100, 0), (1, 0, 100)])
def test_blue_green_switches_everything_at_once(tmp_path: Path, step: int, stable: int, candidate: int) -> None:
    resources = compile_project(tmp_path, "blueGreen", "  steps: [{weight: 0, pause: 1h}, {weight: 100}]\n",
                                stable=3, candidate=4, step=step, status="progressing")  # fmt: skip
    [route] = routes(resources)
    assert weights(route) == {"stable": stable, "candidate": candidate}


def test_deployments_pin_the_versions_the_state_names(tmp_path: Path) -> None:
    resources = compile_project(tmp_path, "canary", CANARY, stable=3, candidate=4, step=0, status="progressing")
    deployments = {item.name: item.body for item in find(resources, "Deployment", ENV)}
    assert sorted(deployments) == ["chat-candidate", "chat-stable"]
    for track, version in (("stable", 3), ("candidate", 4)):
        body = deployments[f"chat-{track}"]
        pod = body["spec"]["template"]
        assert pod["metadata"]["labels"] == {conventions.LABEL_APP_NAME: "chat", conventions.LABEL_TRACK: track,
                                             "version": str(version)}  # fmt: skip
        assert body["spec"]["selector"]["matchLabels"] == {conventions.LABEL_APP_NAME: "chat",
                                                           conventions.LABEL_TRACK: track}  # fmt: skip
        assert body["spec"]["replicas"] == 2
        [fetch] = pod["spec"]["initContainers"]
        assert fetch["args"][:2] == ["--model-uri", f"models:/chat-registered/{version}"]  # a number, not an alias
        [server] = pod["spec"]["containers"]
        assert server["image"] == IMAGE and server["ports"] == [{"name": "http", "containerPort": 8000}]
        assert server["args"] == ["--model", "/models/current", "--served-model-name", "chat", "--port", "8000"]
    service = one(resources, "Service", ENV, "chat").body["spec"]
    assert service["selector"] == {conventions.LABEL_APP_NAME: "chat"}  # both tracks; the subsets split them
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_no_candidate_deployment_once_promoted_or_rolled_back(tmp_path: Path) -> None:
    for status in ("promoted", "rolledBack", "idle"):
        resources = compile_project(tmp_path / status, "canary", CANARY, stable=3, status=status)
        assert [item.name for item in find(resources, "Deployment", ENV)] == ["chat-stable"]


def test_strict_validation_catches_a_misspelt_istio_field(tmp_path: Path) -> None:
    """The strict check above is not a formality: a field Istio does not know is refused."""
    resources = compile_project(tmp_path, "shadow", "  steps: [{pause: 2h}]\n  mirrorPercent: 12.5\n",
                                stable=3, candidate=4, step=0, status="progressing")  # fmt: skip
    body = one(resources, "VirtualService", ENV, "chat").body
    body["spec"]["http"][0]["mirrorPercent"] = body["spec"]["http"][0].pop("mirrorPercentage")
    with pytest.raises(Exception, match="mirrorPercent"):
        validate_strict(body)
