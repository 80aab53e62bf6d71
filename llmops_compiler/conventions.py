"""Names shared by the spec language, the targets, the runtime steps and the tests.

One place for every metric name, label key, annotation key, folder and resource name pattern, so that
the rules Prometheus evaluates, the metrics the runtime pushes and the filters the Sensors apply agree.
"""

from __future__ import annotations

from typing import Final

API_VERSION: Final = "llmops.dev/v1alpha1"
GENERATOR: Final = "llmops-compiler"

# --- metric contract (defaults; a Project may rename the metrics) ---------------------------------
REQUESTS_TOTAL: Final = "llm_requests_total"
REQUEST_DURATION_BUCKET: Final = "llm_request_duration_seconds_bucket"
DRIFT_SCORE: Final = "llmops_drift_score"
QUALITY_SCORE: Final = "llmops_quality_score"
QUALITY_RECORDS: Final = "llmops_quality_records"  # records behind each quality score (0: an empty window)
# The built-in quality metrics of the continuous evaluation (runtime `score`) → the methods each can be computed
# with, the default first; any other metric is graded by an LLM judge.
QUALITY_METHODS: Final[dict[str, tuple[str, ...]]] = {
    "groundedness": ("embedding", "nli", "judge"),
    "relevance": ("embedding", "judge"),
    "similarity": ("embedding", "judge"),
    "safety": ("pattern", "classifier", "judge"),
    "privacy": ("pattern", "judge"),
    "feedback": ("feedback",),
}

LABEL_MODEL: Final = "model"
LABEL_VERSION: Final = "version"
LABEL_CODE: Final = "code"
LABEL_FEATURE: Final = "feature"
LABEL_METHOD: Final = "method"
LABEL_METRIC: Final = "metric"
LABEL_ENVIRONMENT: Final = "environment"
LABEL_SEVERITY: Final = "severity"
LABEL_ACTION: Final = "llmops_action"
LABEL_TIER: Final = "tier"

SEVERITY_PAGE: Final = "page"
SEVERITY_TICKET: Final = "ticket"
ACTIONS: Final = ("retrain", "rollback", "notify")

# Pushgateway job names used by the runtime steps.
PUSH_JOB_DRIFT: Final = "llmops-drift"
PUSH_JOB_QUALITY: Final = "llmops-quality"

# --- Kubernetes labels and annotations on every generated object ----------------------------------
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_SPEC_KIND: Final = "llmops.dev/kind"
LABEL_SPEC_NAME: Final = "llmops.dev/name"
LABEL_ENV: Final = "llmops.dev/environment"
LABEL_APP_NAME: Final = "app.kubernetes.io/name"
LABEL_TRACK: Final = "llmops.dev/track"
TRACK_STABLE: Final = "stable"
TRACK_CANDIDATE: Final = "candidate"
ANNOTATION_SOURCE: Final = "llmops.dev/source"
ANNOTATION_SPEC_HASH: Final = "llmops.dev/spec-hash"
ANNOTATION_CONTENT_HASH: Final = "llmops.dev/content-hash"
ANNOTATION_ROLLOUT: Final = "llmops.dev/rollout"  # where a rollout stands (JSON), on its VirtualService

# --- generated/ layout ----------------------------------------------------------------------------
MANIFEST_FILE: Final = ".llmops-manifest.json"
ARGOCD_FOLDER: Final = "argocd"
KUSTOMIZATION_FILE: Final = "kustomization.yaml"

# Folder inside generated/<env>/ for each Kubernetes kind.
KIND_FOLDERS: Final[dict[str, str]] = {
    "Namespace": "namespace",
    "ServiceAccount": "rbac",
    "Role": "rbac",
    "RoleBinding": "rbac",
    "ConfigMap": "configmaps",
    "Job": "jobs",
    "WorkflowTemplate": "workflows",
    "CronWorkflow": "workflows",
    "EventSource": "events",
    "Sensor": "events",
    "EventBus": "events",
    "PrometheusRule": "monitoring",
    "AlertmanagerConfig": "monitoring",
    "VirtualService": "traffic",
    "DestinationRule": "traffic",
    "Deployment": "serving",
    "Service": "serving",
}

# --- service accounts (least privilege, one per role) ---------------------------------------------
WORKFLOW_SERVICE_ACCOUNT: Final = "llmops-workflow"
SENSOR_SERVICE_ACCOUNT: Final = "llmops-sensor"
# Identities with no rights in the cluster at all: the model servers, and the rollout steps (they talk to git,
# Prometheus and MLflow only; ArgoCD applies what they commit).
SERVING_SERVICE_ACCOUNT: Final = "llmops-serving"
ROLLOUT_SERVICE_ACCOUNT: Final = "llmops-rollout"

# --- resource name patterns -----------------------------------------------------------------------
def tune_workflow_name(model: str) -> str:
    """WorkflowTemplate that tunes, evaluates and registers ``model`` (triggered by retrain alerts)."""
    return f"tune-{model}"


def rollback_workflow_name(model: str) -> str:
    """WorkflowTemplate that rolls ``model`` back to the stable version."""
    return f"rollback-{model}"


def score_workflow_name(monitor: str) -> str:
    """CronWorkflow that scores a Monitor's quality checks on production logs (continuous evaluation)."""
    return f"score-{monitor}"


def curate_workflow_name(dataset: str) -> str:
    """WorkflowTemplate (and CronWorkflow, when scheduled) that curates a new version of a Dataset."""
    return f"curate-{dataset}"


def ingest_workflow_name(knowledge_base: str) -> str:
    """WorkflowTemplate that ingests one object of a KnowledgeBase (started by its Sensor)."""
    return f"ingest-{knowledge_base}"


def resync_workflow_name(knowledge_base: str) -> str:
    """CronWorkflow that re-ingests a KnowledgeBase's whole prefix and prunes what is gone."""
    return f"resync-{knowledge_base}"


def knowledge_base_resource_name(knowledge_base: str) -> str:
    """EventSource and Sensor of a KnowledgeBase's bucket notifications."""
    return f"kb-{knowledge_base}"


def environment_alias(alias: str, environment: str) -> str:
    """An MLflow alias of one environment (``stable-prod``): the registered model is shared by every environment,
    each of which serves its own versions. The promote step keeps them in line with the RolloutState; the plain
    aliases follow the Project's last environment."""
    return f"{alias}-{environment}"


def analysis_workflow_name(policy: str) -> str:
    """CronWorkflow that analyses the candidate of a RolloutPolicy and promotes, holds or rolls back."""
    return f"analyze-{policy}"


def drift_workflow_name(monitor: str, check: str) -> str:
    """CronWorkflow that runs one drift check of a Monitor."""
    return f"drift-{monitor}-{check}"


def prompt_configmap_name(prompt: str, content_hash: str) -> str:
    """Content-hashed ConfigMap of a Prompt, so consumers roll when the prompt changes."""
    return f"prompt-{prompt}-{content_hash}"


def chain_configmap_name(chain: str) -> str:
    return f"chain-{chain}"


TOOL_REGISTRY_CONFIGMAP: Final = "llmops-tool-registry"

# Workflow parameters a trigger may set on the tune workflow.
TUNE_PARAM_DATASET: Final = "dataset-uri"
TUNE_PARAM_REASON: Final = "reason"
TUNE_PARAM_ALERT: Final = "source-alert"
TUNE_PARAM_FEATURE: Final = "feature"
TUNE_PARAM_GIT_COMMIT: Final = "git-commit"
TUNE_PARAM_FORCE: Final = "force"
# The commit does not exist yet when the compiler runs: whoever submits a run (a Sensor, CI) passes the commit
# of the specs it was built from; `unknown` marks a run started by hand or a content-identified one.
UNKNOWN_COMMIT: Final = "unknown"


# --- the monitoring loop: rules, alert routing and the triggers that act on alerts ----------------
LABEL_SLO: Final = "slo"
LABEL_CHECK: Final = "check"
LABEL_NAMESPACE: Final = "namespace"
LABEL_ALERTNAME: Final = "alertname"
# The owner of every series, alert, route and trigger: (project, namespace, monitor[, check]). Owners sharing a
# Prometheus, Alertmanager or Pushgateway select only their own. Pushed scores carry the namespace as
# `llmops_namespace`: a pushed `namespace` would clash with the label Prometheus puts on the Pushgateway target.
LABEL_PROJECT: Final = "llmops_project"
LABEL_MONITOR: Final = "llmops_monitor"
LABEL_PUSHED_NAMESPACE: Final = "llmops_namespace"
LABEL_PUSH_JOB: Final = "job"
PUSH_TIME_METRIC: Final = "push_time_seconds"  # the Pushgateway's own gauge: when a group was last pushed

ALERT_SLO_BURN: Final = "LLMErrorBudgetBurn"
ALERT_DRIFT: Final = "LLMFeatureDrift"
ALERT_QUALITY: Final = "LLMQualityBelowMinimum"
ALERT_SCORE_STALE: Final = "LLMScoreStale"
ALERT_SCORE_MISSING: Final = "LLMScoreMissing"

ALERT_ANNOTATION_SUMMARY: Final = "summary"
ALERT_ANNOTATION_DESCRIPTION: Final = "description"
ALERT_ANNOTATION_RUNBOOK: Final = "runbook_url"
ALERT_ANNOTATION_DASHBOARD: Final = "dashboard_url"


def slo_error_ratio_record(window: str) -> str:
    """Recording rule of an SLO's error ratio over ``window`` (series labelled model, slo, environment)."""
    return f"llmops_slo:error_ratio:rate{window}"


def monitor_resource_name(monitor: str) -> str:
    """The PrometheusRule, AlertmanagerConfig, EventSource and Sensor of one Monitor."""
    return f"monitor-{monitor}"


# Alertmanager: the receiver that forwards retrain/rollback alerts to Argo Events, and notify's default.
EVENTS_RECEIVER: Final = "llmops-argo-events"
NOTIFY_RECEIVER: Final = "llmops-notify"
# Labels a notification groups alerts by; the Sensor reads them from the payload's `commonLabels`.
ALERT_GROUP_BY: Final = (
    "alertname", "llmops_project", "llmops_monitor", "model", "environment", "llmops_action", "slo", "check",
    "feature", "metric", "severity",
)

# Argo Events: the EventBus (the name EventSources and Sensors use when they name none), and the webhook that
# receives Alertmanager's notifications.
EVENT_BUS_NAME: Final = "default"
ALERT_WEBHOOK_EVENT: Final = "alertmanager"
ALERT_WEBHOOK_PORT: Final = 12000
ALERT_WEBHOOK_ENDPOINT: Final = "/alerts"


def eventsource_service_url(eventsource: str, namespace: str, port: int, endpoint: str) -> str:
    """In-cluster URL of a webhook EventSource (Argo Events names its Service `<name>-eventsource-svc`)."""
    return f"http://{eventsource}-eventsource-svc.{namespace}.svc:{port}{endpoint}"

SERVING_PLACEHOLDERS: Final = ("modelDir", "port", "model", "version")
"""What a served model's `command` and `args` may hold as `{{name}}`: filled in per track by the serving target."""
