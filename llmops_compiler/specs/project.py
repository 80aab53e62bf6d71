"""Project: the one spec that says where the output goes, which platform it targets and which services exist."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from .. import conventions
from .common import (
    DnsLabel,
    HostPort,
    LabelKey,
    LabelValue,
    Line,
    MetricName,
    PinnedImage,
    Quantity,
    SecretKeyRef,
    StrictModel,
    Url,
    _label_key,
)

VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?$")
GIT_BRANCH = re.compile(r"^(?!/|.*\.\.|.*//|.*@\{|.*\.lock$|.*/$)[A-Za-z0-9._/-]+$")
REPO_PATH = re.compile(r"^(\.|[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)$")
ARTIFACT_REPOSITORY = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")


def _version(value: str) -> str:
    if not VERSION.fullmatch(value):
        raise ValueError(f"`{value}` is not a version such as `3.6` or `3.6.2` (quote it: `\"3.10\"`)")
    return value


def _branch(value: str) -> str:
    if not GIT_BRANCH.fullmatch(value):
        raise ValueError(f"`{value}` is not a git branch name")
    return value


def _repo_path(value: str) -> str:
    if not REPO_PATH.fullmatch(value) or ".." in value.split("/"):
        raise ValueError(f"`{value}` is not a relative folder of the repository such as `generated`")
    return value


def _artifact_repository(value: str) -> str:
    if not ARTIFACT_REPOSITORY.fullmatch(value):
        raise ValueError(f"`{value}` is not an S3 location such as `s3://bucket/prefix`")
    return value


Version = Annotated[str, AfterValidator(_version), WithJsonSchema({"type": "string", "pattern": VERSION.pattern})]
Branch = Annotated[str, AfterValidator(_branch), WithJsonSchema({"type": "string", "pattern": GIT_BRANCH.pattern})]
RepoPath = Annotated[str, AfterValidator(_repo_path), WithJsonSchema({"type": "string", "pattern": REPO_PATH.pattern})]
ArtifactRepository = Annotated[str, AfterValidator(_artifact_repository),
                               WithJsonSchema({"type": "string", "pattern": ARTIFACT_REPOSITORY.pattern})]
ResourceName = Annotated[str, AfterValidator(_label_key)]


class GitSource(StrictModel):
    """The repository, branch and folder ArgoCD watches (where `generated/` is committed)."""

    url: Url
    """Clone URL of the repository ArgoCD syncs from, e.g. `https://github.com/acme/gitops.git`."""
    branch: Branch = "main"
    """Branch ArgoCD tracks (its `targetRevision`)."""
    path: RepoPath = "generated"
    """Folder of the repository that holds the compiled output."""


class Environment(StrictModel):
    """One deployment target: a namespace on a cluster, synced automatically or by hand."""

    merge_key: ClassVar[str] = "name"

    name: DnsLabel
    """Environment name, used in folder names, labels and alert routing (`dev`, `staging`, `prod`)."""
    namespace: DnsLabel
    """Kubernetes namespace everything of this environment is deployed into."""
    cluster: Url = "https://kubernetes.default.svc"
    """API server URL of the cluster, as registered in ArgoCD."""
    auto_sync: bool = True
    """Let ArgoCD sync (and prune) automatically; `false` for environments a person syncs after review. A manual
    environment is never pruned or deleted by an automatic sync."""


class MLflowSettings(StrictModel):
    """Where models, prompts, runs and datasets are registered."""

    tracking_uri: Url
    """MLflow tracking server URL (no credentials in it: use `credentials`)."""
    credentials: SecretKeyRef | None = None
    """Secret holding the token sent as `MLFLOW_TRACKING_TOKEN`."""


class ObjectStore(StrictModel):
    """Where workflows read `s3://` inputs (datasets, base models, logs): AWS S3 by default, or an S3-compatible
    store such as MinIO. Without keys, credentials come from the pod's identity (IRSA, instance profile)."""

    endpoint: HostPort = "s3.amazonaws.com"
    """S3 endpoint as `host` or `host:port`, without a scheme."""
    insecure: bool = False
    """Talk plain HTTP instead of TLS (an in-cluster MinIO without certificates)."""
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$", max_length=64)] | None = None
    """S3 region, e.g. `eu-west-1`."""
    access_key: SecretKeyRef | None = None
    """Secret holding the access key id (give `secretKey` too, or neither for the pod's identity)."""
    secret_key: SecretKeyRef | None = None
    """Secret holding the secret access key."""


class RuntimeSettings(StrictModel):
    """The image the runtime steps run in, and where their artifacts go."""

    image: PinnedImage
    """Runtime image with `llmops-compiler[runtime]` installed, pinned by digest."""
    artifact_repository: ArtifactRepository | None = None
    """S3 bucket and prefix where workflow artifacts (adapters, metrics) are stored, e.g.
    `s3://acme-artifacts/workflows`; the compiler generates the `artifact-repositories` ConfigMap Argo reads.
    Without it, the workflow controller's default artifact repository is used."""
    object_store: ObjectStore = ObjectStore()
    """The S3 (or S3-compatible) store inputs, artifacts and documents are read from."""
    service_account_annotations: dict[LabelKey, Line] = {}
    """Annotations on the workflows' ServiceAccount, e.g. `eks.amazonaws.com/role-arn: arn:aws:iam::...` to give
    the pods an identity that may read the object store without keys."""


class PrometheusSettings(StrictModel):
    """Where Prometheus and the Pushgateway are, and the labels the prometheus-operator's selectors need:
    a Prometheus loads only the PrometheusRules its `ruleSelector` matches (kube-prometheus-stack, for one,
    selects `release: <its release>`), an Alertmanager only the AlertmanagerConfigs its
    `alertmanagerConfigSelector` matches. Without the right labels the rules silently do nothing."""

    url: Url
    """Prometheus HTTP API the rollout analysis queries."""
    pushgateway_url: Url
    """Pushgateway the drift and evaluation steps push scores to."""
    rule_labels: dict[LabelKey, LabelValue] = {}
    """Labels put on every PrometheusRule (what the Prometheus `ruleSelector` matches)."""
    alertmanager_config_labels: dict[LabelKey, LabelValue] = {}
    """Labels put on every AlertmanagerConfig (what the Alertmanager `alertmanagerConfigSelector` matches)."""


DEFAULT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class MetricNames(StrictModel):
    """The metric contract: names the serving app, the runtime steps and the rules agree on."""

    requests_total: MetricName = conventions.REQUESTS_TOTAL
    """Counter of requests, labelled `model`, `version` and `code` (the HTTP status)."""
    request_duration_bucket: MetricName = conventions.REQUEST_DURATION_BUCKET
    """Buckets of the request-duration histogram in seconds, labelled `model`, `version` and `le`."""
    latency_buckets: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1, max_length=64)] = list(
        DEFAULT_LATENCY_BUCKETS)
    """Upper bounds (seconds) of the duration histogram's buckets as the serving app exports them; a latency
    SLO's threshold must be one of them."""
    drift_score: MetricName = conventions.DRIFT_SCORE
    """Gauge the drift step pushes, labelled `model`, `feature`, `method`."""
    quality_score: MetricName = conventions.QUALITY_SCORE
    """Gauge the continuous evaluation pushes, labelled `model`, `metric`."""


class AlertingSettings(StrictModel):
    """How Alertmanager proves itself to the Argo Events webhook that starts retrains and rollbacks: a bearer
    token both read from one Secret (create it in each environment's namespace). Without it anyone who can
    reach the webhook could start GPU jobs."""

    webhook_token: SecretKeyRef = SecretKeyRef.model_validate({"name": "llmops-alert-webhook", "key": "token"})
    """Secret (in each environment's namespace) holding the webhook's bearer token."""


class ArgoCDSettings(StrictModel):
    """Where ArgoCD runs and the AppProjects the Applications belong to."""

    namespace: DnsLabel = "argocd"
    """Namespace ArgoCD is installed in (its Applications and AppProjects live there)."""
    project: DnsLabel | None = None
    """AppProject of the environment Applications (default: the Project's name)."""
    admin_project: DnsLabel | None = None
    """AppProject of the root app-of-apps, applied by hand once (default: `<project>-admin`)."""


class PlatformVersions(StrictModel):
    """The versions of the controllers the output is for; the output uses only what they support, and
    `llmops requirements` lists them. Quote them: `"3.10"` is a version, `3.10` a number."""

    kubernetes: Version = "1.30"
    """Kubernetes API server version."""
    argo_workflows: Version = "3.6"
    """Argo Workflows controller (3.5 and later; before 3.6, CronWorkflows get `schedule` and workflows `mutex`)."""
    argo_events: Version = "1.9"
    """Argo Events controller (1.8 and later: JetStream EventBus, `atLeastOnce` triggers)."""
    argocd: Version = "3.3"
    """ArgoCD (2.7 and later: the `Delete=false` sync option that protects manual environments)."""
    prometheus_operator: Version = "0.80"
    """prometheus-operator (0.53 and later: AlertmanagerConfig `httpConfig.authorization` and `matchType`)."""
    istio: Version = "1.24"
    """Istio (1.20 and later; 1.22 and later serve `networking.istio.io/v1`, older ones get `v1beta1`)."""


class EventBusSettings(StrictModel):
    """The Argo Events EventBus the compiler generates in every environment with alert or upload triggers."""

    jetstream_version: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]*$", max_length=32)] = "2.9.16"
    """JetStream version: one of the `version`s in the controller's `argo-events-controller-config`
    (`2.9.16` ships with every Argo Events from 1.8.1 to 1.9.x)."""
    replicas: int = Field(default=3, ge=1, le=9)
    """JetStream servers: 3 (or more) survive the loss of one; 1 for a small cluster (2 is refused by Argo Events)."""


class NodePool(StrictModel):
    """A node type of the cluster, so that a workload that cannot fit it fails the compile, not the scheduler."""

    merge_key: ClassVar[str] = "name"

    name: DnsLabel
    """Name of the pool, for messages."""
    node_selector: Annotated[dict[LabelKey, LabelValue], Field(min_length=1)]
    """Labels of the nodes of this type; a workload whose `nodeSelector` has all of them runs here."""
    allocatable: dict[ResourceName, Quantity]
    """What one node offers pods (`cpu`, `memory`, `nvidia.com/gpu`, ...): its capacity minus what the kubelet
    and system reserve (`kubectl get node -o jsonpath='{.status.allocatable}'`)."""


class Defaults(StrictModel):
    """Settings other specs inherit."""

    runbook_base_url: Url | None = None
    """A Monitor without its own `runbookUrl` links `<base>/<monitor>` from its alerts."""


class Delivery(StrictModel):
    """How the rollout steps (promote, rollback, a new candidate) write to git: ArgoCD then carries out what
    the commit says."""

    mode: Literal["push", "pullRequest"] = "push"
    """`push` to the watched branch, or `pullRequest`: push a branch and open a pull request for a person."""
    git_token: SecretKeyRef | None = None
    """Secret holding a token that may push to the repository over HTTPS (and open pull requests)."""
    forge_api: Url = "https://api.github.com"
    """The forge's API, for pull requests (GitHub's REST API)."""
    forge_repository: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")] | None = None
    """`owner/name` of the repository on the forge, for pull requests."""
    author_name: Line = "llmops-rollout"
    """Commit author name."""
    author_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")] = "llmops-rollout@users.noreply.github.com"
    """Commit author e-mail."""


class ProjectSpec(StrictModel):
    """The project: repository, environments, platform services and the metric contract."""

    repo: GitSource
    """The git repository ArgoCD syncs the compiled output from."""
    environments: Annotated[list[Environment], Field(min_length=1)]
    """Deployment targets, each a namespace on a cluster."""
    mlflow: MLflowSettings
    """The MLflow tracking server and registry."""
    runtime: RuntimeSettings
    """Runtime image, artifacts and object store of the generated workflows."""
    prometheus: PrometheusSettings
    """Prometheus, the Pushgateway and the labels prometheus-operator selects on."""
    metrics: MetricNames = MetricNames()
    """Names of the metric contract (defaults follow the design)."""
    alerting: AlertingSettings = AlertingSettings()
    """How Alertmanager authenticates to the alert webhook."""
    argocd: ArgoCDSettings = ArgoCDSettings()
    """ArgoCD namespace and AppProjects."""
    platform: PlatformVersions = PlatformVersions()
    """Versions of the controllers the output targets."""
    event_bus: EventBusSettings = EventBusSettings()
    """The JetStream EventBus that carries alert and upload events to the Sensors."""
    node_pools: list[NodePool] = []
    """Node types of the cluster, for the compile-time check that workloads fit their nodes."""
    delivery: Delivery = Delivery()
    """How rollout transitions are written to git."""
    defaults: Defaults = Defaults()
    """Defaults other specs inherit."""
