"""Small constructors for Argo Workflows objects, as plain dicts in Argo's own JSON shape.

The compile path builds Argo objects without importing hera (its models cost about a second to import);
conformance is kept by the strict round trip through hera's models in the tests and in
``llmops compile --strict`` (:mod:`llmops_compiler.strict`). Keys under ``spec`` are written in alphabetical
order, the order Argo's own ``argo lint`` output and hera's models use, so that a reviewer finds a field where
Argo's documentation lists it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import conventions, platform
from ..resolve import EnvironmentView
from . import workloads
from .base import Body

API_VERSION = "argoproj.io/v1alpha1"

# Exit codes of the runtime steps: 1 a quality gate failed, 2 bad input; both fail the same way on every try.
# Retry what may pass next time: Argo errors (pod deleted or evicted, node lost, artifact transfer failed) and
# exit codes >= 3 (MLflow, git or another service unreachable, OOM kill 137).
RETRY_EXPRESSION = 'lastRetry.status == "Error" || asInt(lastRetry.exitCode) >= 3'

# Successful pods go at once; failed ones stay for `kubectl logs` until the workflow's TTL removes it.
SUCCEEDED_WORKFLOW_TTL = 24 * 3600
FAILED_WORKFLOW_TTL = 7 * 24 * 3600

# The labels a workflow started from a template or a CronWorkflow carries, so `kubectl get wf -l` finds them.
WORKFLOW_LABEL_KEYS = (conventions.LABEL_PART_OF, conventions.LABEL_ENV,
                       conventions.LABEL_SPEC_KIND, conventions.LABEL_SPEC_NAME)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def alphabetical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted, recursively; lists keep their order. (Hot: it runs over every
    workflow, so values of an exact scalar type are not passed to a call of their own.)"""
    if isinstance(value, dict):
        ordered = {}
        for key in sorted(value):
            item = value[key]
            ordered[key] = item if type(item) in _SCALARS else alphabetical(item)
        return ordered
    if isinstance(value, list):
        return [item if type(item) in _SCALARS else alphabetical(item) for item in value]
    return value


def compact(**fields: Any) -> Body:
    """A mapping of the fields that are set (not None, not an empty list or mapping)."""
    return {key: value for key, value in fields.items() if value is not None and value != [] and value != {}}


def quantities(values: Mapping[str, str]) -> Body:
    return dict(sorted(values.items()))


def resources(requests: Mapping[str, str], limits: Mapping[str, str]) -> Body:
    """A container's ``resources`` (Kubernetes quantities as text)."""
    return compact(requests=quantities(requests), limits=quantities(limits))


def container(
    view: EnvironmentView,
    command: Sequence[str],
    args: Sequence[str] = (),
    env: Sequence[Body] = (),
    requests: Mapping[str, str] | None = None,
    limits: Mapping[str, str] | None = None,
    mounts: Sequence[Body] = (),
    name: str = "main",
) -> Body:
    """A hardened container running the Project's runtime image (scratch volumes are always mounted)."""
    return compact(
        name=name,
        image=view.project.spec.runtime.image,
        command=list(command),
        args=list(args),
        env=list(env),
        resources=resources(requests or {}, limits or {}),
        securityContext=workloads.container_security_context(),
        volumeMounts=[*workloads.scratch_mounts(), *mounts],
    )


def parameter(name: str, value: str | None = None, description: str | None = None) -> Body:
    return compact(name=name, value=value, description=description)


def workflow_labels(metadata: Body) -> dict[str, str]:
    """The subset of an object's labels its workflows carry."""
    return {key: value for key, value in metadata["labels"].items() if key in WORKFLOW_LABEL_KEYS}


def workflow_spec(
    entrypoint: str,
    templates: Sequence[Body],
    deadline_seconds: int,
    parameters: Sequence[Body] = (),
    volumes: Sequence[Body] = (),
    mutex: str | None = None,
    labels: Mapping[str, str] | None = None,
    ttl: bool = True,
    view: EnvironmentView | None = None,
    service_account: str = conventions.WORKFLOW_SERVICE_ACCOUNT,
) -> Body:
    """The ``spec`` every generated workflow shares: least-privilege service account, restricted pod security,
    a deadline, pods collected on success, a TTL, and optionally a mutex and workflow labels."""
    from .core import artifact_repository_ref

    spec = compact(
        entrypoint=entrypoint,
        arguments={"parameters": list(parameters)} if parameters else None,
        artifactRepositoryRef=artifact_repository_ref(view) if view is not None else None,
        serviceAccountName=service_account,
        securityContext=workloads.pod_security_context(),
        activeDeadlineSeconds=deadline_seconds,
        synchronization=synchronization(view, mutex) if mutex else None,
        podGC={"strategy": "OnPodSuccess"},
        ttlStrategy={"secondsAfterSuccess": SUCCEEDED_WORKFLOW_TTL,
                     "secondsAfterFailure": FAILED_WORKFLOW_TTL} if ttl else None,
        workflowMetadata={"labels": dict(labels)} if labels else None,
        volumes=[*workloads.scratch_volumes(), *volumes],
        templates=list(templates),
    )
    return alphabetical(spec)  # type: ignore[no-any-return]


def synchronization(view: EnvironmentView | None, mutex: str) -> Body:
    """A workflow-level mutex: ``mutexes`` (a list) from Argo Workflows 3.6 (4.0 knows nothing else); 3.5 knows
    only ``mutex`` and silently ignores the list, so two retrains would overlap."""
    if view is not None and not platform.argo_workflows_lists(view.project.spec.platform):
        return {"mutex": {"name": mutex}}
    return {"mutexes": [{"name": mutex}]}


def schedules(view: EnvironmentView, schedule: str) -> Body:
    """A CronWorkflow's schedule: ``schedules`` (a list) from Argo Workflows 3.6; 3.5 needs ``schedule`` and
    rejects a CronWorkflow without it."""
    if platform.argo_workflows_lists(view.project.spec.platform):
        return {"schedules": [schedule]}
    return {"schedule": schedule}
