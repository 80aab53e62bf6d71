"""Project: the one spec that says where the output goes and which platform services exist."""

from __future__ import annotations

from pydantic import Field

from .. import conventions
from .common import DnsLabel, LabelKey, LabelValue, PinnedImage, SecretKeyRef, StrictModel, Url


class GitSource(StrictModel):
    """The repository, branch and folder ArgoCD watches (where `generated/` is committed)."""

    url: str = Field(min_length=1)
    branch: str = "main"
    path: str = "generated"


class Environment(StrictModel):
    name: DnsLabel
    namespace: DnsLabel
    cluster: Url = "https://kubernetes.default.svc"
    auto_sync: bool = True


class MLflowSettings(StrictModel):
    tracking_uri: Url
    credentials: SecretKeyRef | None = None


class ObjectStore(StrictModel):
    """Where workflows read `s3://` inputs (datasets, base models, logs): AWS S3 by default, or an S3-compatible
    store such as MinIO. Without keys, credentials come from the pod's identity (IRSA, instance profile)."""

    endpoint: str = Field(default="s3.amazonaws.com", pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
    insecure: bool = False
    region: str | None = None
    access_key: SecretKeyRef | None = None
    secret_key: SecretKeyRef | None = None


class RuntimeSettings(StrictModel):
    image: PinnedImage
    artifact_repository: str | None = None
    object_store: ObjectStore = ObjectStore()


class PrometheusSettings(StrictModel):
    """Where Prometheus and the Pushgateway are, and the labels the prometheus-operator's selectors need:
    a Prometheus loads only the PrometheusRules its `ruleSelector` matches (kube-prometheus-stack, for one,
    selects `release: <its release>`), an Alertmanager only the AlertmanagerConfigs its
    `alertmanagerConfigSelector` matches. Without the right labels the rules silently do nothing."""

    url: Url
    pushgateway_url: Url
    rule_labels: dict[LabelKey, LabelValue] = {}
    alertmanager_config_labels: dict[LabelKey, LabelValue] = {}


class MetricNames(StrictModel):
    requests_total: str = conventions.REQUESTS_TOTAL
    request_duration_bucket: str = conventions.REQUEST_DURATION_BUCKET
    drift_score: str = conventions.DRIFT_SCORE
    quality_score: str = conventions.QUALITY_SCORE


class AlertingSettings(StrictModel):
    """How Alertmanager proves itself to the Argo Events webhook that starts retrains and rollbacks: a bearer
    token both read from one Secret (create it in each environment's namespace). Without it anyone who can
    reach the webhook could start GPU jobs."""

    webhook_token: SecretKeyRef = SecretKeyRef.model_validate({"name": "llmops-alert-webhook", "key": "token"})


class ArgoCDSettings(StrictModel):
    namespace: DnsLabel = "argocd"
    project: DnsLabel | None = None


class Defaults(StrictModel):
    runbook_base_url: Url | None = None  # a monitor without its own runbookUrl links <base>/<monitor>


class ProjectSpec(StrictModel):
    repo: GitSource
    environments: list[Environment] = Field(min_length=1)
    mlflow: MLflowSettings
    runtime: RuntimeSettings
    prometheus: PrometheusSettings
    metrics: MetricNames = MetricNames()
    alerting: AlertingSettings = AlertingSettings()
    argocd: ArgoCDSettings = ArgoCDSettings()
    defaults: Defaults = Defaults()
