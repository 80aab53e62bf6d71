"""Download one pinned model version from the MLflow registry into a directory and verify it.

``python -m llmops_compiler.runtime.fetch_model --model-uri models:/NAME/VERSION --output DIR
--mlflow-tracking-uri URI [--require-digest]``

Runs as the init container of a serving pod, before the server starts: what it leaves in ``--output`` is
exactly the files ``register`` uploaded for that version, or nothing.

* ``--model-uri`` must pin a version number (``models:/<registered-model>/<version>``). Aliases
  (``models:/NAME@candidate``), stages and ``latest`` are refused: they move, and a pod that restarts
  must load what it loaded before.
* The files are downloaded into a temporary folder inside ``--output``; when the version carries the tag
  ``llmops.model_digest`` (written by ``register``: sha256 over the directory's relative paths and
  contents, :func:`llmops_compiler.runtime.register.dir_digest`) the download's digest must equal it,
  otherwise the download is deleted and the step exits 1. Without the tag the digest is recorded but not
  checked (``--require-digest`` makes a missing tag an error, exit 1).
* Then the files are moved into ``--output`` and ``llmops-model.json`` is written beside them:
  ``{"name", "version", "digest", "digest_verified", "source", "source_run"}``.
* ``--output`` must be empty or missing, or hold what a fetch left (an earlier fetch with
  ``llmops-model.json``, a staging folder, or the files of a fetch killed while moving them in), which is
  replaced once the new version is known to exist: an init container that runs again fetches and verifies
  again. Anything else is refused.

Exit codes: 0 fetched; 1 the download does not match the registered digest (or has none with
``--require-digest``); 2 a bad reference (malformed URI, an alias, a version that does not exist) or a bad
``--output``; 3 MLflow or its artifact store failed or could not be reached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmops_compiler.runtime._common import (
    EXIT_GATE_FAILED,
    ArgParser,
    RuntimeStepError,
    StepError,
    UsageError,
    mlflow_client,
    run_step,
)
from llmops_compiler.runtime.register import TAG_MODEL_DIGEST, dir_digest

STEP = "fetch_model"
METADATA_FILE = "llmops-model.json"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[^/@]+)$")
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION = re.compile(r"^[1-9][0-9]*$")


@dataclass(frozen=True)
class ModelReference:
    """A registered model version: ``name`` and ``version`` (a positive integer, as text)."""

    name: str
    version: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class FetchResult:
    reference: ModelReference
    output: Path
    digest: str
    digest_verified: bool
    source: str
    source_run: str | None


def parse_model_uri(uri: str) -> ModelReference:
    """``models:/NAME/VERSION`` as a :class:`ModelReference`; :class:`UsageError` for anything else.

    Refused with a message saying why: an alias (``models:/NAME@ALIAS``), a stage or ``latest`` in place of
    the version, and any other shape.
    """
    alias = _ALIAS_URI.match(uri)
    if alias:
        raise UsageError(
            f"--model-uri '{uri}' names alias '{alias['alias']}'; aliases move, so pin the version: "
            f"models:/{alias['name']}/<version>"
        )
    match = _MODEL_URI.match(uri)
    if not match:
        raise UsageError(f"--model-uri '{uri}' is not models:/<registered-model>/<version>")
    if not _VERSION.match(match["version"]):
        raise UsageError(
            f"--model-uri '{uri}': '{match['version']}' is not a version number; "
            "stages and 'latest' move, so pin the version"
        )
    return ModelReference(match["name"], match["version"])


IN_PROGRESS_FILE = ".llmops-fetch-in-progress"
"""Written into ``--output`` before the verified files are moved in and removed once ``llmops-model.json`` is
written: a fetch killed in between left only its own files, which the next run clears."""
STAGING_PREFIX = ".fetch-"


def check_output(output: Path) -> None:
    """Refuse an ``--output`` that is not a directory, or that holds files no fetch left (nothing is changed)."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output is not a directory: {output}")
    if not output.exists():
        return
    entries = [entry for entry in output.iterdir() if not entry.name.startswith(STAGING_PREFIX)]
    ours = (output / METADATA_FILE).is_file() or (output / IN_PROGRESS_FILE).is_file()
    if entries and not ours:
        raise UsageError(f"--output {output} is not empty and holds no earlier fetch ({METADATA_FILE}); refusing")


def prepare_output(output: Path) -> None:
    """Make ``output`` an empty directory: create it, or clear what a fetch left there (an earlier fetch, its
    staging folders, a fetch killed while moving files in); refuse foreign content."""
    check_output(output)
    output.mkdir(parents=True, exist_ok=True)
    for entry in output.iterdir():  # an emptyDir keeps what an earlier init-container run left
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def fetch(
    reference: ModelReference, output: str | Path, tracking_uri: str, *, require_digest: bool = False
) -> FetchResult:
    """Download ``reference`` into ``output``, verify its digest, write ``llmops-model.json``.

    Raises :class:`UsageError` (exit 2) when the version does not exist or ``output`` is unusable,
    :class:`StepError` with exit 1 on a digest mismatch, :class:`RuntimeStepError` (exit 3) when MLflow or
    its artifact store fails.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    out = Path(output)
    check_output(out)  # before MLflow is asked; a good earlier fetch is cleared only once the version exists
    client = mlflow_client(tracking_uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(reference.name, reference.version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise UsageError(f"registered model '{reference.name}' has no version {reference.version}") from None
        raise RuntimeStepError(f"MLflow failed: {exc.message}") from None

    expected = (mv.tags or {}).get(TAG_MODEL_DIGEST)
    if expected is None and require_digest:
        raise StepError(f"{reference.uri} has no {TAG_MODEL_DIGEST} tag and --require-digest is set", EXIT_GATE_FAILED)
    prepare_output(out)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=reference.uri, dst_path=str(staging), tracking_uri=tracking_uri
            )
        except MlflowException as exc:
            raise RuntimeStepError(f"downloading {reference.uri} failed: {exc.message}") from None
        except OSError as exc:
            raise RuntimeStepError(f"downloading {reference.uri} failed: {exc}") from None
        digest = dir_digest(staging)
        if expected is not None and digest != expected:
            raise StepError(
                f"{reference.uri}: downloaded files have digest {digest}, the registry records {expected}; "
                "refusing to serve them",
                EXIT_GATE_FAILED,
            )
        (out / IN_PROGRESS_FILE).write_text(f"{reference.uri}\n", encoding="utf-8")
        for entry in staging.iterdir():
            os.replace(entry, out / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    result = FetchResult(
        reference=reference,
        output=out,
        digest=digest,
        digest_verified=expected is not None,
        source=str(mv.source),
        source_run=mv.run_id or None,
    )
    metadata = {
        "name": reference.name,
        "version": reference.version,
        "digest": digest,
        "digest_verified": result.digest_verified,
        "source": result.source,
        "source_run": result.source_run,
    }
    partial = out / f".{METADATA_FILE}.partial"
    partial.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, out / METADATA_FILE)
    (out / IN_PROGRESS_FILE).unlink(missing_ok=True)
    return result


def read_metadata(model_dir: str | Path) -> dict[str, object] | None:
    """The ``llmops-model.json`` a fetch wrote into ``model_dir``, or ``None`` when there is none."""
    path = Path(model_dir) / METADATA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return data


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--model-uri", required=True, help="models:/<registered-model>/<version> (never an alias)")
    p.add_argument("--output", required=True, help="directory receiving the model files and llmops-model.json")
    p.add_argument("--mlflow-tracking-uri", required=True, help="MLflow tracking (and registry) URI")
    p.add_argument("--require-digest", action="store_true", help="fail when the version has no digest tag")
    return p


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        reference = parse_model_uri(args.model_uri)
        res = fetch(reference, args.output, args.mlflow_tracking_uri, require_digest=args.require_digest)
        check = "verified" if res.digest_verified else "not verified: the version has no digest tag"
        print(f"{STEP}: {reference.uri} -> {res.output} (sha256 {res.digest}, {check})", file=sys.stderr)
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
