"""query: the top-k chunks of an ingested knowledge base (Milvus Lite, the bundled all-MiniLM-L6-v2 model),
through the function, the Retriever and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kb_support import (
    MINILM,
    KnowledgeBase,
    S3Server,
    moto_s3,
    new_knowledge_base,
    shared_embedding_model,
)

from llmops_compiler.runtime import ingest
from llmops_compiler.runtime._common import UsageError
from llmops_compiler.runtime.query import Hit, Retriever, main, query


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


@pytest.fixture
def ingested(kb: KnowledgeBase, embedding_model: Any) -> KnowledgeBase:
    code, report = ingest.run(kb.argv("--all"), model=embedding_model)
    assert code == 0 and report.documents_ingested == 5
    return kb


def test_top_k_hits_best_first_with_document_score_and_text(ingested: KnowledgeBase, embedding_model: Any) -> None:
    question = "How many days until my refund is paid back?"
    hits = query(ingested.db, ingested.collection, embedding_model, question, top_k=3)
    assert len(hits) == 3 and all(isinstance(h, Hit) for h in hits)
    assert hits[0].document == "help/refunds.txt"
    assert "within 14 days" in hits[0].text
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    rows = {(r["document"], r["chunk"]): r["text"] for r in ingested.rows()}
    for hit in hits:
        assert rows[(hit.document, hit.chunk)] == hit.text
    # the score is the cosine similarity of the normalised embeddings, as computed here independently
    q, t = embedding_model.encode([question, hits[0].text], normalize_embeddings=True)
    assert hits[0].score == pytest.approx(float(np.dot(q, t)), abs=1e-4)


def test_top_k_larger_than_the_collection(ingested: KnowledgeBase, embedding_model: Any) -> None:
    hits = query(ingested.db, ingested.collection, embedding_model, "anything", top_k=1000)
    assert len(hits) == len(ingested.rows())


def test_retriever_answers_many_questions_with_one_model(ingested: KnowledgeBase, embedding_model: Any) -> None:
    with Retriever(ingested.db, ingested.collection, embedding_model) as retriever:
        assert retriever.search("When is the support office open?", 1)[0].document == "help/office hours.txt"
        assert retriever.search("Which parts of the grinder wear out?", 1)[0].document == "help/warranty.pdf"
        with pytest.raises(UsageError, match="top_k must be between 1 and 16384, got 0"):
            retriever.search("x", 0)


def test_l2_metric_ranks_nearest_first(kb: KnowledgeBase, embedding_model: Any) -> None:
    code, _ = ingest.run(kb.argv("--all", "--metric", "L2"), model=embedding_model)
    assert code == 0
    hits = query(kb.db, kb.collection, embedding_model, "How do I reset my password?", top_k=3)
    assert hits[0].document == "help/password-reset.html"
    distances = [h.score for h in hits]
    assert distances == sorted(distances)
    q, t = embedding_model.encode(["How do I reset my password?", hits[0].text], normalize_embeddings=True)
    assert hits[0].score == pytest.approx(float(np.sum((q - t) ** 2)), abs=1e-4)  # squared Euclidean


def test_missing_collection_and_other_dimension(
    ingested: KnowledgeBase, embedding_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="collection 'nope' does not exist"):
        query(ingested.db, "nope", embedding_model, "x")

    class Wider:  # a stand-in model of another dimension: query must refuse before searching
        def get_embedding_dimension(self) -> int:
            return 768

    with pytest.raises(UsageError, match="holds 384-dimensional vectors but the embedding model produces 768"):
        query(ingested.db, ingested.collection, Wider(), "x")
    argv = ["--vector-store-uri", ingested.db, "--collection", "nope", "--embedding-model", MINILM, "question"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"query: error: collection 'nope' does not exist in {ingested.db}"


def test_a_store_or_collection_ingest_did_not_make_is_refused(embedding_model: Any, tmp_path: Path) -> None:
    from llmops_compiler.runtime._kb_store import VectorStore

    missing = tmp_path / "typo" / "kb.db"
    with pytest.raises(UsageError, match=r"no vector store at .*typo/kb\.db"):
        query(str(missing), "kb", embedding_model, "x")
    assert not missing.parent.exists()  # a query only reads: nothing is created
    foreign = str(tmp_path / "other.db")
    with VectorStore(foreign) as store:
        store.client.create_collection("foreign", dimension=384)
    with pytest.raises(UsageError, match="collection 'foreign' lacks the field"):
        query(foreign, "foreign", embedding_model, "x")


def test_command_line_prints_json_lines(ingested: KnowledgeBase, subprocess_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_compiler.runtime.query", "--vector-store-uri", ingested.db,
         "--collection", ingested.collection, "--embedding-model", MINILM, "--top-k", "2",
         "How many months does the warranty cover manufacturing defects?"],
        env=subprocess_env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(hits) == 2
    assert set(hits[0]) == {"document", "chunk", "score", "text"}
    assert hits[0]["document"] == "help/warranty.pdf" and "24 months" in hits[0]["text"]
    assert hits[0]["score"] >= hits[1]["score"]
