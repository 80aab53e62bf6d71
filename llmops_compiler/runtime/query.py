"""Nearest chunks of a knowledge base for a question: ``python -m llmops_compiler.runtime.query``.

``python -m llmops_compiler.runtime.query --vector-store-uri URI --collection NAME --embedding-model NAME_OR_PATH
[--top-k 4] [--vector-store-token-env VAR] "question"`` prints one JSON object per hit, best first:
``{"document": KEY, "chunk": N, "score": S, "text": "..."}``.

The question is embedded with the same model and normalisation as :mod:`.ingest` uses, and the collection is
searched with the metric it was indexed with. ``score`` is what Milvus reports for that metric: the cosine
similarity (``COSINE``) or inner product (``IP``), higher is closer, or the squared Euclidean distance
(``L2``), lower is closer; hits come best first either way. A chain's ``retrieve`` step uses
:class:`Retriever` (one model and connection for many questions) or :func:`query`.

Exit codes: 0 (also with no hits), 2 bad arguments, a missing collection or a model of another dimension,
3 the vector store failed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from llmops_compiler.runtime._common import ArgParser, UsageError, run_step
from llmops_compiler.runtime._kb_embedding import embed, embedding_dimension, load_embedding_model
from llmops_compiler.runtime._kb_store import VectorStore

STEP: Final = "query"
DEFAULT_TOP_K: Final = 4
#: Milvus's largest search limit (``topk``).
MAX_TOP_K: Final = 16_384


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk: its document's object key, its index in the document, Milvus's score, its text."""

    document: str
    chunk: int
    score: float
    text: str


class Retriever:
    """Searches one collection with one embedding model; ``embedding_model`` is a name, a path or a loaded
    ``SentenceTransformer``. Use it as a context manager (or call :meth:`close`) to release the store."""

    def __init__(self, vector_store_uri: str, collection: str, embedding_model: Any, token: str | None = None) -> None:
        self.collection = collection
        self.model = load_embedding_model(embedding_model) if isinstance(embedding_model, str) else embedding_model
        self.store = VectorStore(vector_store_uri, token, create=False)
        try:
            info = self.store.describe(collection)
            if info is None:
                raise UsageError(f"collection {collection!r} does not exist in {vector_store_uri}")
            self.store.check_fields(collection, info, "query the collection its KnowledgeBase fills")
            dimension = embedding_dimension(self.model)
            if info.dimension != dimension:
                raise UsageError(
                    f"collection {collection!r} holds {info.dimension}-dimensional vectors but the embedding "
                    f"model produces {dimension}"
                )
            self.store.load(collection)
        except BaseException:
            self.store.close()
            raise

    def search(self, text: str, top_k: int = DEFAULT_TOP_K) -> list[Hit]:
        """The ``top_k`` chunks nearest to ``text``, best first (fewer when the collection holds fewer)."""
        check_top_k(top_k)
        vector = embed(self.model, [text])[0]
        return [
            Hit(document=h["document"], chunk=h["chunk"], score=h["distance"], text=h["text"])
            for h in self.store.search(self.collection, vector.tolist(), top_k)
        ]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_top_k(top_k: int) -> None:
    """Raises :class:`UsageError` unless ``1 <= top_k <=`` :data:`MAX_TOP_K`."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise UsageError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")


def query(
    vector_store_uri: str,
    collection: str,
    embedding_model: Any,
    text: str,
    top_k: int = DEFAULT_TOP_K,
    token: str | None = None,
) -> list[Hit]:
    """The ``top_k`` chunks of ``collection`` nearest to ``text``, best first (see :class:`Retriever`).

    Raises :class:`UsageError` for a missing collection or a model of another dimension, and
    :class:`RuntimeStepError` when the vector store fails.
    """
    with Retriever(vector_store_uri, collection, embedding_model, token) as retriever:
        return retriever.search(text, top_k)


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("question")
    p.add_argument("--vector-store-uri", required=True, help="Milvus URI, or a local *.db path (Milvus Lite)")
    p.add_argument("--collection", required=True)
    p.add_argument("--embedding-model", required=True, help="sentence-transformers model name or directory")
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    p.add_argument("--vector-store-token-env", metavar="VAR", help="environment variable holding the Milvus token")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(list(argv) if argv is not None else None)
        check_top_k(args.top_k)
        token = None
        if args.vector_store_token_env:
            token = os.environ.get(args.vector_store_token_env)
            if token is None:
                raise UsageError(f"environment variable {args.vector_store_token_env} is not set")
        hits = query(args.vector_store_uri, args.collection, args.embedding_model, args.question, args.top_k, token)
        for hit in hits:
            print(json.dumps(asdict(hit), ensure_ascii=False))
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    sys.exit(main())
