"""Output a real cluster accepts and means what we meant: each test encodes the controller behaviour it relies on
(Argo Events, ArgoCD, the kubelet's Pod Security admission, Argo Workflows versions, kubectl's YAML decoder)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from monitoring_support import build, find, model_yaml, one, project_yaml, tool, write_specs
from project_paths import EXAMPLE_GENERATED, EXAMPLE_SPECS
from schemas import validate_strict

from llmops_compiler import api, conventions, requirements
from llmops_compiler.diagnostics import CompileError
from llmops_compiler.serialize import dump_yaml
from llmops_compiler.targets.base import Resource


@pytest.fixture(scope="module")
def example() -> api.Build:
    return api.build(EXAMPLE_SPECS)


def objects(example: api.Build) -> dict[str, dict[str, Any]]:
    return {item.path: item.body for item in example.resources}


# --- Argo Events ------------------------------------------------------------------------------------------

def test_every_namespace_with_events_has_a_jetstream_event_bus(example: api.Build) -> None:
    """EventSources and Sensors use the EventBus named `default` when they name none; without one nothing is
    delivered. NATS Streaming refuses a Sensor with two dependencies on one event (the alert Sensor has a
    retrain and a rollback dependency on the `alertmanager` event), so the bus is JetStream."""
    by_namespace: dict[str, set[str]] = {}
    for item in example.resources:
        by_namespace.setdefault(item.body["metadata"].get("namespace", ""), set()).add(item.kind)
    for namespace, kinds in by_namespace.items():
        if kinds & {"EventSource", "Sensor"}:
            [bus] = [item for item in example.resources
                     if item.kind == "EventBus" and item.body["metadata"]["namespace"] == namespace]
            assert bus.name == conventions.EVENT_BUS_NAME == "default"
            assert bus.body["spec"] == {"jetstream": {"version": "2.9.16", "replicas": 3}}
            validate_strict(bus.body)
    sensor = objects(example)["prod/events/monitor-support-llm.sensor.yaml"]
    events = [(dependency["eventSourceName"], dependency["eventName"]) for dependency in sensor["spec"]["dependencies"]]
    assert len(events) == 2 and len(set(events)) == 1  # what NATS Streaming would refuse
    assert all("eventBusName" not in item.body["spec"] for item in example.resources
               if item.kind in ("EventSource", "Sensor"))


def test_a_single_server_event_bus_gets_a_single_replica_stream(tmp_path: Path) -> None:
    project = project_yaml().replace("  prometheus:", "  eventBus: {replicas: 1}\n  prometheus:")
    specs = write_specs(tmp_path, {"project.yaml": project, "models/chat.yaml": model_yaml("chat", tuned=True),
                                   "monitoring/chat.yaml": RETRAIN_MONITOR})
    bus = one(build(specs), "EventBus").body
    assert bus["spec"]["jetstream"] == {"version": "2.9.16", "replicas": 1, "streamConfig": "replicas: 1\n"}


def test_triggers_are_not_lost_and_their_rate_limit_delays(example: api.Build) -> None:
    sensor = objects(example)["prod/events/monitor-support-llm.sensor.yaml"]
    for trigger in sensor["spec"]["triggers"]:
        # Argo Events 1.9 retries only `atLeastOnce` triggers (pkg/sensors/listener.go); the event is
        # acknowledged after the trigger ran, so a Sensor restart redelivers it.
        assert trigger["atLeastOnce"] is True
        assert trigger["retryStrategy"]["steps"] >= 3
        assert trigger["rateLimit"]["requestsPerUnit"] >= 1  # 0 would divide by zero in the Sensor
        assert len(trigger["template"]["name"]) <= 63  # it becomes the `events.argoproj.io/trigger` label


RETRAIN_MONITOR = """\
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: chat
spec:
  model: chat
  slos:
    - {name: errors, type: errorRatio, objective: 0.99, action: retrain}
"""


def test_a_trigger_name_too_long_for_a_label_fails_the_compile(tmp_path: Path) -> None:
    name = "m" * 58  # `retrain-` + 58 characters: 66, over a label value's 63
    specs = write_specs(tmp_path, {"project.yaml": project_yaml(), f"models/{name}.yaml": model_yaml(name, tuned=True),
                                   "monitoring/chat.yaml": RETRAIN_MONITOR.replace("model: chat", f"model: {name}")})
    with pytest.raises(CompileError) as error:
        api.build(specs)
    [problem] = [item for item in error.value.diagnostics if item.code == "LLM504"]
    assert str(problem.position) == "specs/monitoring/chat.yaml:4:9"
    assert problem.message == (f"Sensor `monitor-chat` carries the name `retrain-{name}` (66 characters), which is "
                               "not a valid label value of at most 63 characters: Argo Events labels the objects it "
                               "creates with the trigger name")


# --- Pod Security: every pod the output runs passes the `restricted` profile ----------------------------------

ALLOWED_VOLUMES = {"emptyDir", "configMap", "secret", "projected", "downwardAPI", "persistentVolumeClaim",
                   "ephemeral", "csi"}
IMAGES_RUNNING_AS_ROOT = ("argo-events",)  # FROM scratch without USER: a user id must be given


def pod_specs(body: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]], str]]:
    """(pod security context, containers, image family) of every pod an object makes its controller run."""
    kind, spec = body["kind"], body.get("spec", {})
    if kind in ("WorkflowTemplate", "CronWorkflow"):
        workflow = spec.get("workflowSpec", spec)
        return [(workflow["securityContext"], [template["container"]], "runtime")
                for template in workflow["templates"] if "container" in template]
    if kind in ("Job", "Deployment"):
        pod = spec["template"]["spec"]
        return [(pod.get("securityContext", {}), pod["containers"] + pod.get("initContainers", []), "runtime")]
    if kind in ("EventSource", "Sensor"):
        template = spec["template"]
        return [(template.get("securityContext", {}), [template.get("container", {})], "argo-events")]
    return []


def restricted_problems(pod: dict[str, Any], containers: list[dict[str, Any]], family: str) -> list[str]:
    """The Pod Security Standard `restricted` checks (kubernetes.io/docs/concepts/security/pod-security-standards),
    plus: an image that runs as root needs an explicit non-root `runAsUser` for `runAsNonRoot` to admit it."""
    problems = []
    if pod.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append("pod seccompProfile is not RuntimeDefault")
    for container in containers:
        security = container.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problems.append("capabilities do not drop ALL")
        if set(security.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append("capabilities add more than NET_BIND_SERVICE")
        if security.get("privileged"):
            problems.append("privileged")
        if not (security.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            problems.append("runAsNonRoot is not set")
        user = security.get("runAsUser", pod.get("runAsUser"))
        if user == 0 or (user is None and family in IMAGES_RUNNING_AS_ROOT):
            problems.append(f"no non-root runAsUser for an image that runs as root ({family})")
    return problems


def test_every_pod_passes_the_restricted_pod_security_standard(example: api.Build) -> None:
    checked = set()
    for item in example.resources:
        for pod, containers, family in pod_specs(item.body):
            assert restricted_problems(pod, containers, family) == [], item.path
            checked.add(item.kind)
        volumes = item.body.get("spec", {}).get("volumes", []) + item.body.get("spec", {}).get(
            "workflowSpec", {}).get("volumes", [])
        for volume in volumes:
            assert set(volume) - {"name"} <= ALLOWED_VOLUMES, (item.path, volume)
    assert checked >= {"WorkflowTemplate", "CronWorkflow", "Job", "EventSource", "Sensor"}
    sensor = objects(example)["prod/events/monitor-support-llm.sensor.yaml"]
    assert sensor["spec"]["template"]["securityContext"]["runAsUser"] == 9731  # upstream's own install's user


def test_the_checker_refuses_what_the_kubelet_would() -> None:
    """The restricted checks above can fail: an argo-events pod with only `runAsNonRoot` is refused."""
    assert restricted_problems({"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                               [{"securityContext": {"allowPrivilegeEscalation": False,
                                                     "capabilities": {"drop": ["ALL"]}}}], "argo-events") == [
        "no non-root runAsUser for an image that runs as root (argo-events)"]


# --- ArgoCD: bootstraps, and cannot destroy ----------------------------------------------------------------

def test_argocd_bootstraps_without_an_app_in_a_project_it_creates(example: api.Build) -> None:
    """argo-cd never reconciles an Application whose project does not exist yet (controller/appcontroller.go),
    so no Application may name a project that only a sync of that same Application would create."""
    found = objects(example)
    root = found["argocd/bootstrap/root.yaml"]
    admin = found["argocd/bootstrap/admin-project.yaml"]
    environment_project = found["argocd/project.yaml"]
    assert root["spec"]["project"] == admin["metadata"]["name"] == "support-assistant-admin"
    # The root app syncs argocd/ without recursing, so it never manages the bootstrap folder it lives in.
    assert root["spec"]["source"]["path"] == "generated/argocd" and root["spec"]["source"]["directory"] == {
        "recurse": False}
    synced_by_root = {path for path in found if path.count("/") == 1 and path.startswith("argocd/")}
    assert synced_by_root == {"argocd/project.yaml", "argocd/dev.yaml", "argocd/staging.yaml", "argocd/prod.yaml"}
    # The environment project is created by the root app before the Applications that name it.
    assert environment_project["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    for environment in ("dev", "staging", "prod"):
        app = found[f"argocd/{environment}.yaml"]
        assert app["spec"]["project"] == environment_project["metadata"]["name"]
        assert "argocd.argoproj.io/sync-wave" not in app["metadata"]["annotations"]  # wave 0, after the project
    # The admin project can create Applications and AppProjects in ArgoCD's namespace, and nothing else.
    assert admin["spec"]["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "argocd"}]
    assert admin["spec"]["clusterResourceWhitelist"] == []
    assert {entry["kind"] for entry in admin["spec"]["namespaceResourceWhitelist"]} == {"Application", "AppProject"}
    for body in (root, admin, environment_project):
        validate_strict(body)


def test_environment_apps_may_deploy_exactly_the_generated_kinds_and_never_into_argocd(example: api.Build) -> None:
    found = objects(example)
    project = found["argocd/project.yaml"]["spec"]
    generated = {(item.body["apiVersion"].split("/")[0] if "/" in item.body["apiVersion"] else "", item.kind)
                 for item in example.resources if item.environment != "argocd"}
    namespaced = {(entry["group"], entry["kind"]) for entry in project["namespaceResourceWhitelist"]}
    cluster = {(entry["group"], entry["kind"]) for entry in project["clusterResourceWhitelist"]}
    assert namespaced | cluster == generated  # exactly: an absent or wider list would allow more
    assert cluster == {("", "Namespace")}
    assert not {kind for _, kind in namespaced} & {"Application", "AppProject"}
    assert all(destination["namespace"] != "argocd" for destination in project["destinations"])


def test_a_manual_environment_can_never_be_pruned_or_deleted_by_a_sync(example: api.Build) -> None:
    found = objects(example)
    prod, dev = found["argocd/prod.yaml"], found["argocd/dev.yaml"]
    # prod syncs by hand: no automated sync, no cascading finalizer, and the root app neither prunes nor deletes
    # it; its Namespace survives both a prune and the deletion of its Application.
    assert "automated" not in prod["spec"]["syncPolicy"]
    assert "finalizers" not in prod["metadata"]
    assert prod["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    namespace = found["prod/namespace/support-prod.namespace.yaml"]
    assert namespace["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    # dev syncs itself and is cleaned up with its Application.
    assert dev["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert "argocd.argoproj.io/sync-options" not in found["dev/namespace/support-dev.namespace.yaml"][
        "metadata"].get("annotations", {})


# --- declared platform versions -----------------------------------------------------------------------------

def _with_argo_workflows(tmp_path: Path, version: str) -> list[Resource]:
    project = project_yaml().replace("  prometheus:", f"  platform: {{argoWorkflows: \"{version}\"}}\n  prometheus:")
    monitor = RETRAIN_MONITOR.replace("  slos:", "  logs: s3://logs/chat/\n  features:\n    - {name: size, type: "
                                      "length, field: prompt}\n  drift:\n    - {name: size, feature: size, reference: "
                                      "s3://data/ref.jsonl, threshold: 0.2}\n  slos:")
    return build(write_specs(tmp_path, {"project.yaml": project, "models/chat.yaml": model_yaml("chat", tuned=True),
                                        "monitoring/chat.yaml": monitor}))


def test_argo_workflows_3_5_gets_schedule_and_mutex_and_3_6_the_lists(tmp_path: Path) -> None:
    """CronWorkflow `schedules` and `synchronization.mutexes` appeared in 3.6; 3.5 drops them silently (no lock,
    and a CronWorkflow with an empty schedule); 4.0 knows only them."""
    old = _with_argo_workflows(tmp_path / "old", "3.5")
    cron = one(old, "CronWorkflow").body["spec"]
    assert cron["schedule"] == "*/30 * * * *" and "schedules" not in cron
    assert one(old, "WorkflowTemplate", name="tune-chat").body["spec"]["synchronization"] == {
        "mutex": {"name": "tune-chat"}}
    new = _with_argo_workflows(tmp_path / "new", "3.6")
    assert one(new, "CronWorkflow").body["spec"]["schedules"] == ["*/30 * * * *"]
    assert one(new, "WorkflowTemplate", name="tune-chat").body["spec"]["synchronization"] == {
        "mutexes": [{"name": "tune-chat"}]}
    for item in [*old, *new]:
        validate_strict(item.body)


def test_a_controller_below_its_minimum_fails_at_the_projects_version_field(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as error:
        _with_argo_workflows(tmp_path, "3.4")
    [problem] = error.value.diagnostics
    assert (str(problem.position), problem.code) == ("specs/project.yaml:15:29", "LLM203")  # at the version
    assert problem.message == ("`argoWorkflows` 3.4 is too old: at least 3.5 is needed: the compiler writes "
                               "synchronization and CronWorkflow schedules of 3.5 and later")


# --- artifacts ------------------------------------------------------------------------------------------------

def test_artifacts_go_to_the_projects_repository(example: api.Build) -> None:
    found = objects(example)
    configmap = found["prod/configmaps/artifact-repositories.configmap.yaml"]
    assert configmap["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"] == "llmops"
    assert yaml.safe_load(configmap["data"]["llmops"]) == {"s3": {
        "bucket": "acme-llmops-artifacts", "endpoint": "s3.amazonaws.com", "useSDKCreds": True,
        "keyFormat": "workflows/{{workflow.name}}/{{pod.name}}"}}
    tune = found["prod/workflows/tune-support-llm.workflowtemplate.yaml"]
    assert tune["spec"]["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": "llmops"}
    cron = found["prod/workflows/drift-support-llm-prompt-length.cronworkflow.yaml"]
    assert cron["spec"]["workflowSpec"]["artifactRepositoryRef"] == tune["spec"]["artifactRepositoryRef"]


def test_object_store_credentials_by_secret_or_pod_identity(tmp_path: Path) -> None:
    project = project_yaml().replace("    image:", "    artifactRepository: s3://arts/runs\n    "
                                     "serviceAccountAnnotations: {eks.amazonaws.com/role-arn: "
                                     "\"arn:aws:iam::123456789012:role/llmops\"}\n    image:")
    resources = build(write_specs(tmp_path, {"project.yaml": project,
                                             "models/chat.yaml": model_yaml("chat", tuned=True)}))
    account = one(resources, "ServiceAccount", name=conventions.WORKFLOW_SERVICE_ACCOUNT).body
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/llmops"
    repository = yaml.safe_load(one(resources, "ConfigMap", name="artifact-repositories").body["data"]["llmops"])
    assert repository["s3"]["useSDKCreds"] is True and repository["s3"]["bucket"] == "arts"


# --- Go reads our YAML as we meant it ---------------------------------------------------------------------------

def kubectl_decode(documents: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    """Objects as kubectl's own decoder (sigs.k8s.io/yaml, go-yaml v2) reads our YAML of them: `kubectl annotate
    --local` decodes the files and prints JSON without a cluster."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, document in enumerate(documents):
        (folder / f"{index:04d}.yaml").write_text(dump_yaml(document))
    result = subprocess.run([tool("kubectl"), "annotate", "--local", "-f", str(folder), "-o", "json",
                             "llmops.dev/probe=1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    items, decoder, text, offset = [], json.JSONDecoder(), result.stdout, 0
    while text[offset:].strip():  # one JSON document per object, one after the other
        offset += len(text[offset:]) - len(text[offset:].lstrip())
        document, offset = decoder.raw_decode(text, offset)
        items.extend(document["items"] if document.get("kind") == "List" else [document])
    for item in items:
        item["metadata"]["annotations"].pop("llmops.dev/probe")
        if not item["metadata"]["annotations"]:
            del item["metadata"]["annotations"]
    return items


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=20),
    st.from_regex(r"[-+.]?[0-9][0-9_.eExXoObB+-]{0,12}", fullmatch=True),
    st.sampled_from(["050677189993", "0o17", "1_000", "1e5", "+1", "0x1F", ".5", "1.", "y", "n", "Y", "N", "on",
                     "off", "~", "null", "2026-01-01", "Inf", ".inf", "-.inf", ".NaN", "<<", "=", "08", "012"]),
), min_size=1, max_size=40))
def test_kubectl_reads_every_string_we_write_as_that_string(tmp_path_factory: pytest.TempPathFactory,
                                                             values: list[str]) -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"},
                 "data": {f"k{index}": value for index, value in enumerate(values)}}
    [decoded] = kubectl_decode([configmap], tmp_path_factory.mktemp("kubectl"))
    assert decoded["data"] == configmap["data"]


def test_kubectl_reads_every_generated_object_as_we_built_it(example: api.Build, tmp_path: Path) -> None:
    bodies = [item.body for item in example.resources]
    decoded = kubectl_decode(bodies, tmp_path / "objects")
    assert len(decoded) == len(bodies)
    by_identity = {(item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"]): item
                   for item in decoded}
    for body in bodies:
        key = (body["kind"], body["metadata"].get("namespace"), body["metadata"]["name"])
        assert by_identity[key] == json.loads(json.dumps(body)), key


# --- requirements ------------------------------------------------------------------------------------------------

def every_secret_reference(value: Any) -> set[tuple[str, str]]:
    """Every mapping with a string `name` and `key` anywhere in an object (the test's own, wider walk)."""
    found = set()
    if isinstance(value, dict):
        if isinstance(value.get("name"), str) and isinstance(value.get("key"), str):
            found.add((value["name"], value["key"]))
        for item in value.values():
            found |= every_secret_reference(item)
    elif isinstance(value, list):
        for item in value:
            found |= every_secret_reference(item)
    elif isinstance(value, str) and "\n" in value and ":" in value:
        with contextlib.suppress(yaml.YAMLError):
            found |= every_secret_reference(yaml.safe_load(value))
    return found


def test_requirements_list_every_secret_the_output_references(example: api.Build) -> None:
    listed = requirements.requirements(example)
    referenced: set[tuple[str, str, str]] = set()
    for path in sorted(EXAMPLE_GENERATED.rglob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        namespace = body.get("metadata", {}).get("namespace")
        if namespace and not path.relative_to(EXAMPLE_GENERATED).as_posix().startswith("argocd/"):
            referenced |= {(namespace, name, key) for name, key in every_secret_reference(body)}
            tools = body.get("data", {}).get("tools.yaml")
            if tools:  # the serving app resolves tool credentials by secretName/secretKey
                referenced |= {(namespace, tool["auth"]["secretName"], tool["auth"]["secretKey"])
                               for tool in yaml.safe_load(tools)["tools"] if "auth" in tool}
    assert {(item.namespace, item.name, item.key) for item in listed.secrets} == referenced
    assert ("support-prod", "llmops-alert-webhook", "token") in referenced


def test_requirements_command_names_controllers_crds_and_secrets(cli: Any) -> None:
    result = cli("requirements", str(EXAMPLE_SPECS), "--env", "prod")
    assert result.exit_code == 0, result.output
    assert "  Argo Workflows 3.6 (minimum 3.5)" in result.stdout
    assert "  eventbus.argoproj.io (Argo Events)" in result.stdout
    assert "  support-prod/support-alerts-webhook key `url` (used by " in result.stdout
    assert "support-dev/" not in result.stdout
    as_json = json.loads(cli("requirements", str(EXAMPLE_SPECS), "--format", "json").stdout)
    assert {item["namespace"] for item in as_json["secrets"]} == {"support-dev", "support-staging", "support-prod"}


def test_node_pools_catch_workloads_that_cannot_fit(example: api.Build) -> None:
    """The example's tuning requests fit its declared node type (the compile succeeded), and the declared pool is
    listed as a requirement."""
    assert find(example.resources, "WorkflowTemplate", "prod", "tune-support-llm")
    assert any("pool `gpu-a10g`" in note for note in requirements.requirements(example).notes)
