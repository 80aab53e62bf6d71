"""evaluate: metric functions against hand-computed values, end-to-end runs, gates, regression, judge."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llmops_compiler.runtime import evaluate as ev
from llmops_compiler.runtime._common import RuntimeStepError
from llmops_compiler.runtime._tiny import dataset_records, write_dataset
from llmops_compiler.runtime.evaluate import (
    EvalConfig,
    evaluate,
    evaluate_gates,
    exact_match,
    lcs_length,
    normalize_answer,
    parse_gate,
    parse_regression,
    perplexity_from_nll,
    rouge_l,
    token_f1,
)

# --- metric functions (hand-computed) ------------------------------------------------------------------


def test_normalize_answer() -> None:
    assert normalize_answer("  The Cat, sat!  on A mat.") == "cat sat on mat"
    assert normalize_answer("An apple") == "apple"
    assert normalize_answer("theme") == "theme"  # articles only as whole words


def test_exact_match() -> None:
    assert exact_match("The cat.", "cat") == 1.0
    assert exact_match("Paris", " paris ") == 1.0
    assert exact_match("Paris", "Rome") == 0.0


def test_token_f1() -> None:
    # no articles: common = {black, cat} = 2; P = 2/3, R = 2/2; F1 = 2 * (2/3) * 1 / (2/3 + 1) = 0.8
    assert token_f1("black cat sat", "black cat") == pytest.approx(0.8)
    # SQuAD normalisation drops "the": "cat sat" vs "cat": P = 1/2, R = 1; F1 = 2/3
    assert token_f1("the cat sat", "the cat") == pytest.approx(2 / 3)
    # multiset intersection
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)  # common = {x:1, y:1} = 2; P = R = 2/3
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("the", "cat") == 0.0


def test_lcs_and_rouge_l() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == 0
    # pred: the cat sat on the mat (6), ref: the cat on a mat (5); LCS = the cat on mat = 4
    # P = 4/6, R = 4/5, F = 2PR / (P + R) = 16/22
    assert rouge_l("The cat sat on the mat.", "the cat on a mat") == pytest.approx(16 / 22)
    assert rouge_l("a b c", "c b a") == pytest.approx(1 / 3)  # LCS 1, P = R = 1/3
    assert rouge_l("same words", "Same, words!") == 1.0
    assert rouge_l("", "x") == 0.0


def test_perplexity_formula() -> None:
    assert perplexity_from_nll(3 * math.log(4), 3) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        perplexity_from_nll(1.0, 0)


def test_compute_metrics_two_examples() -> None:
    preds = ["Paris", "the blue sky"]
    refs = ["paris.", "blue"]
    m = ev.compute_metrics(preds, refs, ["exact_match", "token_f1", "rouge_l"])
    # EM: [1, 0]; F1: [1, "blue sky" vs "blue" -> P 1/2, R 1 -> 2/3]; ROUGE-L: [1, LCS 1 of 3 vs 1 -> 1/2]
    assert m == pytest.approx({"exact_match": 0.5, "token_f1": (1 + 2 / 3) / 2, "rouge_l": 0.75})


# --- gates -------------------------------------------------------------------------------------------


def test_parse_gates() -> None:
    g = parse_gate("exact_match>=0.5")
    assert (g.metric, g.op, g.threshold) == ("exact_match", ">=", 0.5)
    assert parse_gate(" perplexity <= 40 ").check(39.0)
    assert not parse_gate("perplexity<40").check(40.0)
    r = parse_regression("rouge_l=0.02")
    assert (r.metric, r.max_delta) == ("rouge_l", 0.02)
    for bad in ("exact_match=>0.5", "exact_match>=x", ">=3"):
        with pytest.raises(ev.UsageError):
            parse_gate(bad)
    with pytest.raises(ev.UsageError):
        parse_regression("rouge_l>=0.02")


def test_evaluate_gates_directions() -> None:
    metrics = {"rouge_l": 0.50, "perplexity": 10.0}
    regs = [parse_regression("rouge_l=0.02"), parse_regression("perplexity=1")]
    res = evaluate_gates(metrics, [], regs, ("3", {"rouge_l": 0.51, "perplexity": 9.5}))
    assert [r["passed"] for r in res] == [True, True]  # 0.50 >= 0.49; 10 <= 10.5
    res = evaluate_gates(metrics, [], regs, ("3", {"rouge_l": 0.53, "perplexity": 8.5}))
    assert [r["passed"] for r in res] == [False, False]  # 0.50 < 0.51; 10 > 9.5
    assert res[0]["threshold"] == pytest.approx(0.51) and res[1]["threshold"] == pytest.approx(9.5)
    res = evaluate_gates(metrics, [], regs, (None, {}))
    assert all(r["passed"] and "no stable version" in r["message"] for r in res)


# --- end to end on the tiny model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model(tiny_model_dir: Path, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model fully fine-tuned on the Q/A set, so greedy answers are mostly right."""
    from llmops_compiler.runtime.tune import TuneConfig, tune

    out = tmp_path_factory.mktemp("trained")
    tune(
        TuneConfig(
            base_model=str(tiny_model_dir),
            dataset=str(tiny_dataset),
            output=str(out),
            method="full",
            epochs=100,
            max_steps=40,
            learning_rate=3e-3,
            batch_size=6,
            seed=3,
        )
    )
    return out


@pytest.fixture
def eval_set(tmp_path: Path) -> Path:
    recs: list[dict[str, str]] = [dict(r) for r in dataset_records()[:5]]
    recs[1]["context"] = "Geography quiz."
    return write_dataset(tmp_path / "eval.jsonl", recs)


ALL = ["exact_match", "token_f1", "rouge_l", "perplexity"]


def test_end_to_end_metrics_consistent(trained_model: Path, eval_set: Path, tmp_path: Path) -> None:
    import torch

    from llmops_compiler.runtime._common import load_causal_lm, load_tokenizer

    res = evaluate(
        EvalConfig(
            dataset=str(eval_set),
            metrics=ALL,
            model=str(trained_model),
            max_new_tokens=4,
            metrics_out=str(tmp_path / "m.json"),
            predictions_out=str(tmp_path / "p.jsonl"),
        )
    )
    refs = [json.loads(line)["completion"] for line in eval_set.read_text().splitlines()]
    assert len(res.predictions) == 5
    assert res.metrics["exact_match"] == pytest.approx(
        sum(exact_match(p, r) for p, r in zip(res.predictions, refs, strict=True)) / 5
    )
    assert res.metrics["exact_match"] >= 0.6  # the fine-tuned model answers most of its training questions
    assert 0 <= res.metrics["token_f1"] <= 1 and 0 <= res.metrics["rouge_l"] <= 1
    assert res.metrics["token_f1"] >= res.metrics["exact_match"]

    # Perplexity agrees with transformers' own masked-label loss, token-weighted over the set.
    model, tok = load_causal_lm(trained_model), load_tokenizer(trained_model)
    total, count = 0.0, 0
    for line in eval_set.read_text().splitlines():
        r = json.loads(line)
        text = f"{r['context']}\n\n{r['prompt']}" if r.get("context") else r["prompt"]
        p_ids, c_ids = tok(text)["input_ids"], tok(r["completion"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + c_ids])
        labels = torch.tensor([[-100] * len(p_ids) + c_ids])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss.item()
        total += loss * len(c_ids)
        count += len(c_ids)
    assert res.metrics["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)

    out = json.loads((tmp_path / "m.json").read_text())
    assert out["metrics"] == pytest.approx(res.metrics)
    assert out["gates"] == [] and out["passed"] is True
    preds = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert preds[1]["input"].startswith("Geography quiz.\n\n")


def test_adapter_on_base_model(tiny_model_dir: Path, eval_set: Path, tmp_path: Path) -> None:
    from llmops_compiler.runtime.tune import TuneConfig, tune

    adapter = tmp_path / "adapter"
    tune(TuneConfig(base_model=str(tiny_model_dir), dataset=str(eval_set), output=str(adapter), max_steps=2))
    base = evaluate(EvalConfig(dataset=str(eval_set), metrics=["perplexity"], base_model=str(tiny_model_dir)))
    cfg = EvalConfig(dataset=str(eval_set), metrics=["perplexity"], base_model=str(tiny_model_dir))
    cfg.adapter = str(adapter)
    with_adapter = evaluate(cfg)
    assert with_adapter.metrics["perplexity"] != base.metrics["perplexity"]


def test_failing_gate_exits_1_naming_the_gate(
    trained_model: Path, eval_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = ev.main(
        [
            "--model", str(trained_model),
            "--dataset", str(eval_set),
            "--metrics", "exact_match,perplexity",
            "--max-new-tokens", "4",
            "--gate", "exact_match>=1.01",
            "--gate", "perplexity<=1000000",
            "--metrics-out", str(tmp_path / "m.json"),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert "gate failed: exact_match>=1.01" in err and "required >= 1.01" in err
    assert "perplexity<=1000000" not in err  # passed gates are not reported as failures
    assert "Traceback" not in err
    out = json.loads((tmp_path / "m.json").read_text())
    assert out["passed"] is False
    assert [(g["gate"], g["passed"]) for g in out["gates"]] == [
        ("exact_match>=1.01", False),
        ("perplexity<=1000000", True),
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--metrics", "exact_match", "--gate", "rouge_l>=0.1"], "gate on metric 'rouge_l', which is not"),
        (["--metrics", "bleu"], "unknown metric(s) bleu"),
        (["--metrics", "rouge_l", "--max-regression", "rouge_l=0.1"], "--max-regression needs"),
        (["--gate", "exact_match=>1"], "bad --gate"),
        (["--adapter", "/proc/llmops-missing"], "--adapter is not a directory"),
        (["--judge-url", "http://127.0.0.1:9/", "--judge-timeout", "-1"], "--judge-timeout must be a finite number"),
        (["--metrics-out", "/proc"], "--metrics-out /proc is a directory"),
    ],
)
def test_usage_errors_exit_2(
    tiny_model_dir: Path,
    eval_set: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    expected: str,
) -> None:
    rc = ev.main(["--base-model", str(tiny_model_dir), "--dataset", str(eval_set), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert expected in err
    assert err.startswith("evaluate: error:") and "Traceback" not in err


def test_regression_gate_against_stable_version(
    trained_model: Path, eval_set: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    name = f"reg-{uuid.uuid4().hex[:8]}"
    cfg = EvalConfig(
        dataset=str(eval_set),
        metrics=["rouge_l", "perplexity"],
        model=str(trained_model),
        max_new_tokens=4,
        max_regressions=["rouge_l=0.02", "perplexity=0.5"],
        registered_model=name,
        mlflow_tracking_uri=mlflow_uri,
        mlflow_experiment="test-evaluate",
    )
    # No stable version yet: the regression gates pass and say so.
    first = evaluate(cfg)
    assert first.passed
    assert all("no stable version" in g["message"] for g in first.gates)
    rouge, ppl = first.metrics["rouge_l"], first.metrics["perplexity"]

    client = MlflowClient(mlflow_uri)
    client.create_registered_model(name)

    def make_stable(rouge_value: float, ppl_value: float) -> str:
        mv = client.create_model_version(
            name,
            source=str(tmp_path),
            tags={"metric.rouge_l": repr(rouge_value), "metric.perplexity": repr(ppl_value)},
        )
        client.set_registered_model_alias(name, "stable", str(mv.version))
        return str(mv.version)

    # Stable slightly better, within the allowed regression: passes.
    v = make_stable(rouge + 0.01, ppl - 0.25)
    ok = evaluate(cfg)
    assert ok.passed, ok.gates
    assert {g["stable_version"] for g in ok.gates} == {v}

    # Stable clearly better: both gates fail.
    make_stable(rouge + 0.05, ppl - 1.0)
    bad = evaluate(cfg)
    assert [g["passed"] for g in bad.gates] == [False, False]
    assert bad.gates[0]["threshold"] == pytest.approx(rouge + 0.03)
    assert bad.gates[1]["threshold"] == pytest.approx(ppl - 0.5)

    # A Model whose serving calls its stable alias `production` compares with that version instead.
    mv = client.create_model_version(name, source=str(tmp_path),
                                     tags={"metric.rouge_l": repr(rouge), "metric.perplexity": repr(ppl)})
    client.set_registered_model_alias(name, "production", str(mv.version))
    production = evaluate(dataclasses.replace(cfg, stable_alias="production"))
    assert production.passed and {g["stable_version"] for g in production.gates} == {str(mv.version)}


class _Judge(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        score = 1.0 if body["completion"].strip() == body["reference"].strip() else 0.25
        data = json.dumps({"score": score}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def judge_url() -> Iterator[str]:
    _Judge.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/judge"
    finally:
        server.shutdown()
        server.server_close()


def test_judge_endpoint_and_mlflow_run(
    trained_model: Path, eval_set: Path, judge_url: str, mlflow_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment(f"judge-{uuid.uuid4().hex[:8]}", artifact_location=str(tmp_path / "art"))
    run_id = client.create_run(exp).info.run_id
    (tmp_path / "run_id").write_text(run_id + "\n")

    res = evaluate(
        EvalConfig(
            dataset=str(eval_set),
            metrics=["exact_match"],
            model=str(trained_model),
            max_new_tokens=4,
            judge_url=judge_url,
            gates=["judge>=0.2"],
            mlflow_tracking_uri=mlflow_uri,
            run_id_file=str(tmp_path / "run_id"),
            metrics_out=str(tmp_path / "m.json"),
        )
    )
    assert len(_Judge.seen) == 5
    assert set(_Judge.seen[0]) == {"prompt", "completion", "reference"}
    assert _Judge.seen[1]["context"] == "Geography quiz."
    pairs = zip(res.predictions, _Judge.seen, strict=True)
    expected = sum(1.0 if p == r["reference"].strip() else 0.25 for p, r in pairs)
    assert res.metrics["judge"] == pytest.approx(expected / 5)
    assert res.passed

    run = client.get_run(run_id)
    assert run.data.metrics["judge"] == pytest.approx(res.metrics["judge"])
    assert run.data.metrics["exact_match"] == pytest.approx(res.metrics["exact_match"])
    assert run.data.tags["llmops.eval_passed"] == "true"


def test_unreachable_judge_is_a_one_line_error(
    tiny_model_dir: Path, eval_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = ev.main(
        [
            "--base-model", str(tiny_model_dir),
            "--dataset", str(eval_set),
            "--metrics", "exact_match",
            "--max-new-tokens", "2",
            "--judge-url", f"http://127.0.0.1:{port}/",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 3
    assert "unreachable" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("record", "expected"), [
    ({"prompt": "  ", "completion": "x"}, ":2: the prompt is empty"),
    ({"prompt": "a\ud800b", "completion": "x"}, ":2: `prompt` holds a lone UTF-16 surrogate"),
])
def test_bad_examples_are_named_and_exit_2(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], record: dict[str, str], expected: str
) -> None:
    dataset = tmp_path / "eval.jsonl"
    dataset.write_text(json.dumps({"prompt": "fine", "completion": "x"}) + "\n" + json.dumps(record) + "\n")
    rc = ev.main(["--base-model", str(tiny_model_dir), "--dataset", str(dataset), "--metrics", "exact_match"])
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and "Traceback" not in err, err


@pytest.mark.parametrize("answer", [b'{"score": NaN}', b'{"score": Infinity}', b'{"score": true}', b'{"score": "0.9"}'])
def test_a_judge_score_must_be_a_finite_number(answer: bytes) -> None:
    class Judge(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RuntimeStepError, match=r"did not answer \{\"score\": <finite number>\}"):
            ev.judge_score(f"http://127.0.0.1:{server.server_address[1]}/", {"prompt": "p"}, 5)
    finally:
        server.shutdown()
        server.server_close()
