"""Which data a run uses: ``python -m llmops_compiler.runtime.dataset_version``.

Turns a reference into the content-addressed URIs of a training and an evaluation split, and writes them to
files a workflow reads as output parameters::

    # a Dataset's latest version (what `curate` last wrote under OUTPUT/latest/manifest.json)
    python -m llmops_compiler.runtime.dataset_version --dataset-uri dataset://NAME --output s3://bucket/prefix/
      --train-uri-out FILE --eval-uri-out FILE [--hash-out FILE]
    # a URI a trigger set: passed through as it is
    python -m llmops_compiler.runtime.dataset_version --dataset-uri s3://bucket/train.jsonl ... --train-uri-out FILE
    # the training data of the version an MLflow alias names (what `register` recorded as llmops.dataset_uri)
    python -m llmops_compiler.runtime.dataset_version --from-model NAME --alias stable --mlflow-tracking-uri URI
      --train-uri-out FILE

``tune-<model>`` uses the first two (a Model that trains from a Dataset always trains from its latest version
unless a trigger names other data, and ``register`` records the content-addressed URI, so a model version says
exactly what it learnt from); a drift check that follows the stable version uses the third. Object-store
credentials and endpoint: boto3's environment (``AWS_*``, ``--endpoint``/``--insecure``). Exit 2 for a missing
or malformed manifest or tag, 3 when the object store or MLflow cannot be reached.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from llmops_compiler.runtime._common import ArgParser, RuntimeStepError, UsageError, run_step, write_text

STEP = "dataset_version"
DATASET_SCHEME = "dataset://"
TAG_DATASET_URI = "llmops.dataset_uri"


def _read(uri: str, endpoint: str | None, insecure: bool) -> bytes:
    """The bytes of a local path or an ``s3://bucket/key`` object."""
    if not uri.startswith("s3://"):
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise UsageError(f"{uri} does not exist")
        return path.read_bytes()
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    url = None
    if endpoint and endpoint != "s3.amazonaws.com":
        url = f"{'http' if insecure else 'https'}://{endpoint}"
    try:
        body: bytes = boto3.client("s3", endpoint_url=url).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            raise UsageError(f"{uri} does not exist: has the Dataset been curated yet?") from error
        raise RuntimeStepError(f"cannot read {uri}: {error}") from error
    except BotoCoreError as error:
        raise RuntimeStepError(f"cannot read {uri}: {error}") from error
    return body


_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def latest_version(output: str, endpoint: str | None = None, insecure: bool = False,
                   name: str | None = None) -> dict[str, Any]:
    """The manifest of a Dataset's latest version: ``{"uri": <content-addressed folder>, "hash": ..., ...}``.

    The manifest is checked before a run trusts it (raises :class:`UsageError`): a JSON object whose ``hash``
    is ``sha256:<64 hex>`` and whose ``uri`` is the folder ``<output>/<that hex>/`` that ``curate`` writes (so
    a manifest cannot point a retrain at data elsewhere), of the Dataset ``name`` when both say one."""
    manifest_uri = output.rstrip("/") + "/latest/manifest.json"
    try:
        manifest = json.loads(_read(manifest_uri, endpoint, insecure))
    except ValueError as error:
        raise UsageError(f"{manifest_uri} is not a JSON manifest: {error}") from error
    if not isinstance(manifest, dict):
        raise UsageError(f"{manifest_uri} is not a JSON object")
    found = _HASH.fullmatch(str(manifest.get("hash", "")))
    if found is None:
        raise UsageError(f"{manifest_uri}: `hash` is not `sha256:` and 64 hex digits")
    base = output.rstrip("/") if output.startswith("s3://") else str(Path(output.removeprefix("file://")).resolve())
    expected = f"{base}/{found.group(1)}/"
    if not isinstance(manifest.get("uri"), str) or manifest["uri"].rstrip("/") + "/" != expected:
        raise UsageError(f"{manifest_uri}: `uri` is {json.dumps(manifest.get('uri'))[:200]}, not the version folder "
                         f"{expected} its hash names")
    if name is not None and manifest.get("name") not in (None, name):
        raise UsageError(f"{manifest_uri} belongs to Dataset {json.dumps(manifest.get('name'))[:80]}, not {name}")
    return manifest


def resolve(dataset_uri: str, output: str | None, endpoint: str | None = None,
            insecure: bool = False) -> tuple[str, str, str]:
    """(train URI, eval URI, content hash) of a reference; a plain URI is its own train split. Raises
    :class:`UsageError` for an empty reference, a ``dataset://`` name that is not a DNS label, and a missing
    or untrustworthy manifest (see :func:`latest_version`)."""
    if not dataset_uri.strip():
        raise UsageError("--dataset-uri is empty")
    if not dataset_uri.startswith(DATASET_SCHEME):
        return dataset_uri, "", ""
    name = dataset_uri.removeprefix(DATASET_SCHEME)
    if not _NAME.fullmatch(name):
        raise UsageError(f"{dataset_uri}: a Dataset's name is a DNS label")
    if output is None:
        raise UsageError(f"{dataset_uri} names a Dataset: give its --output")
    manifest = latest_version(output, endpoint, insecure, name)
    folder = manifest["uri"].rstrip("/")
    return f"{folder}/train.jsonl", f"{folder}/eval.jsonl", str(manifest["hash"])


def from_model(tracking_uri: str, registered_model: str, alias: str) -> str:
    """The training data recorded on the version ``alias`` names."""
    from llmops_compiler.runtime._common import mlflow_client

    try:
        client = mlflow_client(tracking_uri)
        version = client.get_model_version_by_alias(registered_model, alias)
    except Exception as error:
        if "RESOURCE_DOES_NOT_EXIST" in str(error) or "INVALID_PARAMETER_VALUE" in str(error):
            raise UsageError(f"{registered_model} has no version with alias `{alias}`") from error
        raise RuntimeStepError(f"MLflow at {tracking_uri} cannot be reached: {error}") from error
    uri = version.tags.get(TAG_DATASET_URI)
    if not uri:
        raise UsageError(f"version {version.version} of {registered_model} records no `{TAG_DATASET_URI}`")
    return str(uri)


def build_parser() -> ArgParser:
    """The command line of this step (the compiled workflows pass exactly these flags)."""
    parser = ArgParser(prog="python -m llmops_compiler.runtime.dataset_version", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-uri", help="dataset://NAME, or a URI used as it is")
    parser.add_argument("--output", help="the Dataset's output prefix (for dataset://)")
    parser.add_argument("--endpoint", help="S3-compatible endpoint host:port")
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--from-model", metavar="REGISTERED_MODEL")
    parser.add_argument("--alias", default="stable")
    parser.add_argument("--mlflow-tracking-uri")
    parser.add_argument("--train-uri-out", required=True)
    parser.add_argument("--eval-uri-out")
    parser.add_argument("--hash-out")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def body() -> int:
        args = parser.parse_args(argv)
        if (args.dataset_uri is None) == (args.from_model is None):
            parser.error("give exactly one of --dataset-uri or --from-model")
        if args.from_model is not None:
            if not args.mlflow_tracking_uri:
                parser.error("--from-model needs --mlflow-tracking-uri")
            train, evaluation, digest = from_model(args.mlflow_tracking_uri, args.from_model, args.alias), "", ""
        else:
            train, evaluation, digest = resolve(args.dataset_uri, args.output, args.endpoint, args.insecure)
        write_text(args.train_uri_out, train)
        if args.eval_uri_out:
            write_text(args.eval_uri_out, evaluation)
        if args.hash_out:
            write_text(args.hash_out, digest)
        print(f"{STEP}: train {train}" + (f", eval {evaluation}" if evaluation else ""))
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
