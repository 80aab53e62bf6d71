"""Knowledge bases per environment: the ``ingest-<kb>`` WorkflowTemplate (``runtime ingest`` with the spec's
source, chunking, embedding and vector store), an Argo Events EventSource for the bucket's notifications and a
Sensor that submits the ingestion for each object created or removed, and a ``resync-<kb>`` CronWorkflow
(``ingest --all``, which also prunes documents no longer in the bucket) when the spec has a ``schedule``.

Notifications (:func:`event_source`):

- ``minio``: Argo Events' minio source listens to MinIO's bucket notifications (``endpoint`` is ``host:port``
  without a scheme, TLS is ``insecure: false``, keys by Secret reference with the keys ``accesskey`` and
  ``secretkey``). A Sensor sees ``{"notification": [record], ...}`` (argo-events
  ``pkg/eventsources/sources/minio``), so the paths are ``notification.0.eventName`` (``s3:ObjectCreated:Put``),
  ``notification.0.s3.bucket.name`` and ``notification.0.s3.object.key``; MinIO's listen API sends the key as it
  is (not URL-encoded).
- ``sqs``: for AWS S3, the bucket notifies an SQS queue; Argo Events' sqs source with ``jsonBody`` gives
  ``{"body": {"Records": [record]}, ...}`` (``body.Records.0...``), AWS's ``eventName`` has no ``s3:`` prefix and
  its keys are URL-encoded. S3's first ``s3:TestEvent`` message has no ``Records`` and matches no filter.

The Sensor passes only events that change content (``ObjectCreated``/``ObjectRemoved``) for keys under the
prefix, so the ingestion reads the one object that changed rather than the whole bucket; created objects are
upserted, removed ones deleted from the index. Ingestions of one knowledge base never overlap (a mutex).
"""

from __future__ import annotations

from .. import conventions
from ..resolve import EnvironmentView, ResolvedSpec
from ..specs import KnowledgeBaseSpec
from . import argo, argo_events, workloads
from .base import Body, Resource, metadata, resource
from .cron_workflows import cron_workflow

PARAM_BUCKET = "bucket"
PARAM_KEY = "key"
PARAM_EVENT = "event"
EVENT_NAME = "uploads"
DEADLINE_SECONDS = 3 * 3600
RESYNC_DEADLINE_SECONDS = 12 * 3600
REQUESTS = {"cpu": "1", "memory": "2Gi"}
LIMITS = {"memory": "6Gi"}
TOKEN_ENV = "LLMOPS_VECTOR_STORE_TOKEN"
CONTENT_EVENTS = "^(s3:)?Object(Created|Removed):"


def notifications(spec: KnowledgeBaseSpec) -> str:
    return spec.source.notifications or ("minio" if spec.source.endpoint else "sqs")


def ingest_arguments(view: EnvironmentView, knowledge_base: ResolvedSpec[KnowledgeBaseSpec]) -> list[str]:
    """The ``ingest`` settings a knowledge base's runs share (what to read, how to chunk, embed and store)."""
    spec = knowledge_base.spec
    source = spec.source
    args = ["--source", f"s3://{source.bucket}/{source.prefix}"]
    if source.endpoint:
        args += ["--endpoint", source.endpoint] + (["--insecure"] if source.insecure else [])
    elif view.project.spec.runtime.object_store.endpoint != "s3.amazonaws.com":
        store = view.project.spec.runtime.object_store
        args += ["--endpoint", store.endpoint] + (["--insecure"] if store.insecure else [])
    region = source.region or view.project.spec.runtime.object_store.region
    if region:
        args += ["--region", region]
    args += [
        "--chunk-strategy", spec.chunking.strategy, "--chunk-size", str(spec.chunking.size),
        "--chunk-overlap", str(spec.chunking.overlap),
        "--embedding-model", spec.embedding.model, "--dimension", str(spec.embedding.dimension),
        "--vector-store-uri", spec.vector_store.uri, "--collection", spec.vector_store.collection,
        "--metric", spec.vector_store.metric,
        "--mlflow-tracking-uri", "$(MLFLOW_TRACKING_URI)",
        "--mlflow-experiment", f"knowledge-base-{knowledge_base.name}",
    ]
    if spec.vector_store.credentials_secret is not None:
        args += ["--vector-store-token-env", TOKEN_ENV]
    return args


def ingest_env(view: EnvironmentView, knowledge_base: ResolvedSpec[KnowledgeBaseSpec]) -> list[Body]:
    """MLflow settings, the object store's keys and the vector store's token, all by Secret reference."""
    env = workloads.runtime_env(view)
    spec = knowledge_base.spec
    store = view.project.spec.runtime.object_store
    keys: list[tuple[str, str, str]] = []
    if spec.source.credentials_secret is not None:
        keys = [("AWS_ACCESS_KEY_ID", spec.source.credentials_secret, "accesskey"),
                ("AWS_SECRET_ACCESS_KEY", spec.source.credentials_secret, "secretkey")]
    elif store.access_key is not None and store.secret_key is not None:
        keys = [("AWS_ACCESS_KEY_ID", store.access_key.name, store.access_key.key),
                ("AWS_SECRET_ACCESS_KEY", store.secret_key.name, store.secret_key.key)]
    if spec.vector_store.credentials_secret is not None:
        keys.append((TOKEN_ENV, spec.vector_store.credentials_secret, "token"))
    env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for name, secret, key in keys]
    return env


def ingest_template(view: EnvironmentView, knowledge_base: ResolvedSpec[KnowledgeBaseSpec], name: str,
                    action: list[str]) -> Body:
    return {
        "name": name,
        "container": argo.container(view, workloads.runtime_command("ingest"),
                                    [*ingest_arguments(view, knowledge_base), *action],
                                    ingest_env(view, knowledge_base), REQUESTS, LIMITS),
        "retryStrategy": {"limit": 3, "retryPolicy": "Always", "expression": argo.RETRY_EXPRESSION,
                          "backoff": {"duration": "30s", "factor": 2, "maxDuration": f"{DEADLINE_SECONDS}s"}},
    }


def ingest_workflow_template(view: EnvironmentView, knowledge_base: ResolvedSpec[KnowledgeBaseSpec]) -> Body:
    """``ingest-<kb>``: one object, created or removed (the Sensor sets ``key`` and ``event``)."""
    name = conventions.ingest_workflow_name(knowledge_base.name)
    meta = metadata(view, name, knowledge_base, component="ingestion")
    encoding = "none" if notifications(knowledge_base.spec) == "minio" else "url"
    action = ["--object", f"{{{{workflow.parameters.{PARAM_KEY}}}}}",
              "--event", f"{{{{workflow.parameters.{PARAM_EVENT}}}}}", "--object-key-encoding", encoding]
    return {
        "apiVersion": argo.API_VERSION,
        "kind": "WorkflowTemplate",
        "metadata": meta,
        "spec": argo.workflow_spec(
            "ingest", [ingest_template(view, knowledge_base, "ingest", action)], deadline_seconds=DEADLINE_SECONDS,
            parameters=[
                argo.parameter(PARAM_BUCKET, knowledge_base.spec.source.bucket, "Bucket of the object"),
                argo.parameter(PARAM_KEY, "", "Key of the object, as the notification gives it"),
                argo.parameter(PARAM_EVENT, "s3:ObjectCreated:Put",
                               "The notification's event name: created objects are upserted, removed ones deleted"),
            ],
            mutex=name, labels=argo.workflow_labels(meta), view=view,
        ),
    }


def resync_cron_workflow(view: EnvironmentView, knowledge_base: ResolvedSpec[KnowledgeBaseSpec]) -> Body:
    """``resync-<kb>``: the whole prefix on the spec's schedule, pruning documents no longer in the bucket."""
    schedule = knowledge_base.spec.schedule
    assert schedule is not None
    name = conventions.resync_workflow_name(knowledge_base.name)
    meta = metadata(view, name, knowledge_base, component="ingestion")
    return cron_workflow(view, meta, schedule, argo.workflow_spec(
        "resync", [ingest_template(view, knowledge_base, "resync", ["--all"])],
        deadline_seconds=RESYNC_DEADLINE_SECONDS,
        mutex=conventions.ingest_workflow_name(knowledge_base.name), view=view))


def event_source(view: EnvironmentView, knowledge_base: ResolvedSpec[KnowledgeBaseSpec]) -> Body:
    """The bucket's notifications: MinIO's, or AWS S3's through SQS."""
    spec = knowledge_base.spec
    source = spec.source
    if notifications(spec) == "minio":
        assert source.endpoint is not None
        minio: Body = {
            "bucket": {"name": source.bucket},
            "endpoint": source.endpoint,
            "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
            "insecure": source.insecure,
        }
        if source.prefix:
            minio["filter"] = {"prefix": source.prefix, "suffix": ""}
        if source.credentials_secret is not None:
            minio["accessKey"] = {"name": source.credentials_secret, "key": "accesskey"}
            minio["secretKey"] = {"name": source.credentials_secret, "key": "secretkey"}
        body_spec: Body = {"template": argo_events.pod_template(), "minio": {EVENT_NAME: minio}}
    else:
        assert source.queue is not None and source.region is not None
        sqs: Body = {"region": source.region, "queue": source.queue, "jsonBody": True, "waitTimeSeconds": 20}
        if source.credentials_secret is not None:
            sqs["accessKey"] = {"name": source.credentials_secret, "key": "accesskey"}
            sqs["secretKey"] = {"name": source.credentials_secret, "key": "secretkey"}
        body_spec = {"template": argo_events.pod_template(), "sqs": {EVENT_NAME: sqs}}
    return {
        "apiVersion": argo_events.API_VERSION,
        "kind": "EventSource",
        "metadata": metadata(view, conventions.knowledge_base_resource_name(knowledge_base.name), knowledge_base,
                             component="ingestion"),
        "spec": body_spec,
    }


def record_paths(spec: KnowledgeBaseSpec) -> dict[str, str]:
    """GJSON paths of the notification record's fields in the event data a Sensor sees."""
    record = "notification.0" if notifications(spec) == "minio" else "body.Records.0"
    return {PARAM_BUCKET: f"{record}.s3.bucket.name", PARAM_KEY: f"{record}.s3.object.key",
            PARAM_EVENT: f"{record}.eventName"}


def _regex_escape(text: str) -> str:
    """``text`` as a Go (RE2) regular expression that matches it literally."""
    return "".join("\\" + char if char in ".^$*+?()[]{}|\\" else char for char in text)


def sensor(view: EnvironmentView, knowledge_base: ResolvedSpec[KnowledgeBaseSpec]) -> Body:
    """Submits ``ingest-<kb>`` for each created or removed object under the prefix, with its bucket, key and
    event name."""
    spec = knowledge_base.spec
    name = conventions.knowledge_base_resource_name(knowledge_base.name)
    paths = record_paths(spec)
    template_name = conventions.ingest_workflow_name(knowledge_base.name)
    prefix = "^" + _regex_escape(spec.source.prefix)
    if notifications(spec) == "sqs":  # S3 URL-encodes the key: compare the prefix encoded the same way, with
        from urllib.parse import quote_plus  # `/` kept or written `%2F` (implementations differ)

        prefix = "^" + _regex_escape(quote_plus(spec.source.prefix, safe="/")).replace("/", "(/|%2[Ff])")
    filters = [
        {"path": paths[PARAM_EVENT], "type": "string", "value": [CONTENT_EVENTS]},
        {"path": paths[PARAM_BUCKET], "type": "string", "value": [argo_events.exactly(spec.source.bucket)]},
        {"path": paths[PARAM_KEY], "type": "string", "value": [prefix]},
    ]
    parameters = [(PARAM_BUCKET, spec.source.bucket), (PARAM_KEY, ""), (PARAM_EVENT, "s3:ObjectCreated:Put")]
    workflow: Body = {
        "apiVersion": argo.API_VERSION,
        "kind": "Workflow",
        "metadata": {"generateName": f"{template_name}-", "labels": argo_events.trigger_labels(view, knowledge_base)},
        "spec": {"workflowTemplateRef": {"name": template_name},
                 "arguments": {"parameters": [{"name": parameter, "value": default}
                                              for parameter, default in parameters]}},
    }
    trigger = {
        "template": {
            "name": f"ingest-{knowledge_base.name}",
            "conditions": EVENT_NAME,
            "k8s": {
                "operation": "create",
                "source": {"resource": workflow},
                "parameters": [
                    {"src": {"dependencyName": EVENT_NAME, "dataKey": paths[parameter], "value": default},
                     "dest": f"spec.arguments.parameters.{index}.value"}
                    for index, (parameter, default) in enumerate(parameters)
                ],
            },
        },
        "atLeastOnce": True,
        "retryStrategy": dict(argo_events.TRIGGER_RETRY),
    }
    return {
        "apiVersion": argo_events.API_VERSION,
        "kind": "Sensor",
        "metadata": metadata(view, name, knowledge_base, component="ingestion"),
        "spec": {
            "template": argo_events.pod_template(conventions.SENSOR_SERVICE_ACCOUNT),
            "dependencies": [{"name": EVENT_NAME, "eventSourceName": name, "eventName": EVENT_NAME,
                              "filters": {"data": filters}}],
            "triggers": [trigger],
        },
    }


def knowledge_base_targets(view: EnvironmentView) -> list[Resource]:
    """Ingestion template, EventSource, Sensor and (with a schedule) the re-sync of every KnowledgeBase."""
    resources = []
    for knowledge_base in view.knowledge_bases():
        source = knowledge_base.source
        resources.append(resource(view, ingest_workflow_template(view, knowledge_base), source))
        resources.append(resource(view, event_source(view, knowledge_base), source))
        resources.append(resource(view, sensor(view, knowledge_base), source))
        if knowledge_base.spec.schedule is not None:
            resources.append(resource(view, resync_cron_workflow(view, knowledge_base), source))
    return resources
