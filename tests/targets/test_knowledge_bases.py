"""Knowledge-base targets: the Sensor's filters and parameters on real S3 notifications (MinIO's, and AWS's
through SQS as moto produces them), and the compiled ingestion run with the real `ingest` step against an
S3-compatible server and Milvus Lite, found again by `query`."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from monitoring_support import build, fire_sensor, one, project_yaml, workflow_parameters, write_specs
from schemas import validate_strict

from llmops_compiler import conventions
from llmops_compiler.targets.base import Resource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from kb_support import MINILM, S3Server, moto_s3

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests/fixtures/s3_events"


def knowledge_base_yaml(source: str, vector_store: str = "http://milvus.test:19530") -> str:
    return f"""\
apiVersion: llmops.dev/v1alpha1
kind: KnowledgeBase
metadata:
  name: help
spec:
  source:
{source}
  chunking: {{strategy: recursive, size: 300, overlap: 50}}
  embedding: {{model: {MINILM}, dimension: 384}}
  vectorStore: {{uri: "{vector_store}", collection: help_center}}
  schedule: "0 3 * * *"
"""


MINIO_SOURCE = """\
    bucket: acme-help
    prefix: articles/
    endpoint: minio.storage.svc:9000
    credentialsSecret: help-s3"""
SQS_SOURCE = """\
    bucket: acme-help
    prefix: articles/
    queue: help-uploads
    region: us-east-1"""


def compiled(tmp_path: Path, source: str) -> list[Resource]:
    return build(write_specs(tmp_path, {"project.yaml": project_yaml(),
                                        "knowledge/help.yaml": knowledge_base_yaml(source)}))


def minio_event(fixture: str, bucket: str, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / fixture).read_text())
    record = data["notification"][0]
    record["s3"]["bucket"]["name"], record["s3"]["object"]["key"] = bucket, key
    return data


def test_minio_notifications_submit_the_ingestion_of_exactly_that_object(tmp_path: Path) -> None:
    resources = compiled(tmp_path, MINIO_SOURCE)
    source, sensor = one(resources, "EventSource").body, one(resources, "Sensor").body
    for body in (source, sensor, one(resources, "WorkflowTemplate").body, one(resources, "CronWorkflow").body):
        validate_strict(body)
    assert source["spec"]["minio"]["uploads"] == {
        "bucket": {"name": "acme-help"}, "endpoint": "minio.storage.svc:9000",
        "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], "insecure": False,
        "filter": {"prefix": "articles/", "suffix": ""},
        "accessKey": {"name": "help-s3", "key": "accesskey"}, "secretKey": {"name": "help-s3", "key": "secretkey"},
    }
    put = minio_event("minio_put.json", "acme-help", "articles/refund policy.md")
    [created] = fire_sensor(sensor, "kb-help", "uploads", event_data=put)
    assert created["spec"]["workflowTemplateRef"] == {"name": "ingest-help"}
    assert workflow_parameters(created) == {"bucket": "acme-help", "key": "articles/refund policy.md",
                                            "event": "s3:ObjectCreated:Put"}
    [removed] = fire_sensor(sensor, "kb-help", "uploads",
                            event_data=minio_event("minio_delete.json", "acme-help", "articles/old.md"))
    assert workflow_parameters(removed)["event"] == "s3:ObjectRemoved:Delete"  # ingest deletes its chunks
    # Not this knowledge base's: another prefix, another bucket, an event that changes no content.
    accessed = copy.deepcopy(put)
    accessed["notification"][0]["eventName"] = "s3:ObjectAccessed:Get"
    for quiet in (minio_event("minio_put.json", "acme-help", "drafts/x.md"),
                  minio_event("minio_put.json", "other", "articles/x.md"), accessed):
        assert fire_sensor(sensor, "kb-help", "uploads", event_data=quiet) == []


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with moto_s3(lifetime=300) as server:
        yield server


def test_aws_notifications_through_sqs_as_s3_sends_them(tmp_path: Path, s3_server: S3Server) -> None:
    """moto plays S3: a bucket notifies a queue; the message is what Argo Events' sqs source (jsonBody) hands
    the Sensor as `body`."""
    import boto3

    resources = compiled(tmp_path, SQS_SOURCE)
    sensor = one(resources, "Sensor").body
    assert one(resources, "EventSource").body["spec"]["sqs"]["uploads"] == {
        "region": "us-east-1", "queue": "help-uploads", "jsonBody": True, "waitTimeSeconds": 20}
    bucket, queue_name = f"acme-help-{uuid.uuid4().hex[:8]}", f"help-uploads-{uuid.uuid4().hex[:8]}"
    s3 = s3_server.client()
    sqs = boto3.client("sqs", endpoint_url=s3_server.url, region_name="us-east-1")
    queue = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
        {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
    s3.put_object(Bucket=bucket, Key="articles/refund policy.md", Body=b"Refunds take five days.")
    s3.delete_object(Bucket=bucket, Key="articles/refund policy.md")
    s3.put_object(Bucket=bucket, Key="drafts/x.md", Body=b"draft")
    messages = []
    while len(messages) < 4:  # the test event, then one per change
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert batch or messages, "no notification arrived"
        if not batch:
            break
        messages += batch
    sensor_for_bucket = json.loads(json.dumps(sensor).replace("^acme-help$", f"^{bucket}$"))
    started = []
    for message in messages:
        data = {"messageId": message["MessageId"], "messageAttributes": {}, "body": json.loads(message["Body"])}
        started += fire_sensor(sensor_for_bucket, "kb-help", "uploads", event_data=data)
    keys = {workflow_parameters(item)["key"] for item in started}
    assert len(keys) == 1 and urllib.parse.unquote_plus(keys.pop()) == "articles/refund policy.md"
    assert [(workflow_parameters(item)["bucket"], workflow_parameters(item)["event"]) for item in started] == [
        (bucket, "ObjectCreated:Put"), (bucket, "ObjectRemoved:Delete")]  # the test event and drafts/ are ignored
    template = one(resources, "WorkflowTemplate").body["spec"]["templates"][0]["container"]["args"]
    assert template[template.index("--object-key-encoding") + 1] == "url"


def test_compiled_ingestion_runs_with_the_runtime_step(tmp_path: Path, s3_server: S3Server) -> None:
    """The compiled template's command, with the parameters the Sensor set, ingests the uploaded object; the
    removal event deletes it again; `query` finds what was ingested."""
    from llmops_compiler.runtime.query import query

    bucket = f"acme-help-{uuid.uuid4().hex[:8]}"
    source = MINIO_SOURCE.replace("acme-help", bucket).replace("minio.storage.svc:9000", s3_server.endpoint) + \
        "\n    insecure: true"
    resources = compiled(tmp_path, source)
    sensor = one(resources, "Sensor").body
    template = one(resources, "WorkflowTemplate").body
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    key = "articles/refunds.md"
    s3.put_object(Bucket=bucket, Key=key, Body=b"# Refunds\n\nRefunds reach your card within five working days.")
    database = str(tmp_path / "milvus.db")

    def run(event: dict[str, Any]) -> None:
        [workflow] = fire_sensor(sensor, "kb-help", "uploads", event_data=event)
        parameters = {**{item["name"]: item["value"] for item in template["spec"]["arguments"]["parameters"]},
                      **workflow_parameters(workflow)}
        container = template["spec"]["templates"][0]["container"]
        args = [argument.replace("{{workflow.parameters.key}}", parameters["key"])
                .replace("{{workflow.parameters.event}}", parameters["event"]) for argument in container["args"]]
        args[args.index("--vector-store-uri") + 1] = database  # Milvus Lite stands in for the cluster's Milvus
        mlflow = args.index("--mlflow-tracking-uri")
        del args[mlflow:mlflow + 4]  # no MLflow in this test
        result = subprocess.run([sys.executable, "-m", "llmops_compiler.runtime.ingest", *args],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path,
                                env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr

    run(minio_event("minio_put.json", bucket, key))
    [hit] = query(database, "help_center", MINILM, "How long do refunds take?", top_k=1)
    assert hit.document == key and "five working days" in hit.text
    s3.delete_object(Bucket=bucket, Key=key)
    run(minio_event("minio_delete.json", bucket, key))
    assert query(database, "help_center", MINILM, "How long do refunds take?", top_k=1) == []


def test_chains_carry_the_index_the_ingestion_writes() -> None:
    resources = build(ROOT / "specs")
    chain = one(resources, "ConfigMap", "dev", "chain-support-answer").body
    import yaml

    [retrieve] = [step for step in yaml.safe_load(chain["data"]["chain.yaml"])["steps"] if step["type"] == "retrieve"]
    ingest = one(resources, "WorkflowTemplate", "dev", "ingest-help-center").body["spec"]["templates"][0]
    args = ingest["container"]["args"]
    assert retrieve["collection"] == args[args.index("--collection") + 1] == "help_center_dev"  # dev's override
    assert retrieve["vectorStore"] == args[args.index("--vector-store-uri") + 1]
    assert retrieve["embeddingModel"] == args[args.index("--embedding-model") + 1]
    assert conventions.knowledge_base_resource_name("help-center") == "kb-help-center"
