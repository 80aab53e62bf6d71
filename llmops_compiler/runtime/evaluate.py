"""Evaluate a (fine-tuned) causal LM on a JSONL set and apply quality gates.

``python -m llmops_compiler.runtime.evaluate (--model DIR | --base-model DIR [--adapter DIR])
--dataset FILE [--metrics exact_match,token_f1,rouge_l,perplexity] [--max-new-tokens 32]
[--judge-url URL] [--gate 'exact_match>=0.5' ...] [--max-regression 'rouge_l=0.02' ...]
[--registered-model NAME] [--mlflow-tracking-uri URI] [--run-id-file FILE] --metrics-out FILE
[--predictions-out FILE]``

The evaluation set is JSONL with ``prompt`` and ``completion`` (the reference) and an optional
``context``; the model input is ``context + "\\n\\n" + prompt`` (just the prompt without context). Each
prompt is completed greedily (``do_sample=False``, at most ``--max-new-tokens`` tokens, stopping at eos);
the prediction is the decoded new text, stripped of surrounding whitespace.

Metrics (corpus values are means over examples, except perplexity):

* ``exact_match``: 1 if ``normalize(prediction) == normalize(reference)`` else 0, where ``normalize`` is the
  SQuAD one: lower-case, drop ASCII punctuation, drop the articles *a*, *an*, *the*, collapse whitespace.
* ``token_f1``: over the normalised whitespace tokens, with ``common`` = size of the multiset
  intersection, ``P = common / len(pred)``, ``R = common / len(ref)``, ``F1 = 2PR / (P + R)`` (0 if
  ``common == 0``; 1 if both are empty, 0 if only one is).
* ``rouge_l``: ROUGE-L F-measure (beta = 1) over lower-cased alphanumeric tokens:
  ``P = LCS / len(pred)``, ``R = LCS / len(ref)``, ``F = 2PR / (P + R)``, where LCS is the length of the
  longest common subsequence of the token sequences.
* ``perplexity``: ``exp(sum of -log p(token) over every reference-completion token / number of those
  tokens)``, each completion scored given its prompt (teacher forcing, eos not included): a token-weighted
  corpus perplexity.
* ``judge`` (with ``--judge-url``): for each example, POST ``{"prompt", "completion", "reference"}`` (plus
  ``context`` when present) as JSON; the reply must be ``{"score": <number>}``; the metric is the mean.

Gates: ``--gate METRIC(>=|<=|>|<|==)VALUE`` is an absolute threshold. ``--max-regression METRIC=DELTA``
compares with the version of ``--registered-model`` that carries alias ``stable`` in the MLflow registry,
reading its value from the model-version tag ``metric.<METRIC>`` (written by ``register``): higher is
better for every metric except ``perplexity``, so the gate passes when ``value >= stable - DELTA``
(``value <= stable + DELTA`` for perplexity). Without a ``stable`` version (or without that tag on it) the
regression gate passes and says so. A gate on a metric that is not computed is a usage error (exit 2).
Exit 1 when any gate fails; the metrics file is written in every case.
"""

from __future__ import annotations

import json
import math
import re
import string
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_compiler.runtime._common import (
    DEFAULT_EXPERIMENT,
    EXIT_GATE_FAILED,
    ArgParser,
    RuntimeStepError,
    UsageError,
    ensure_experiment,
    format_prompt,
    load_causal_lm,
    load_tokenizer,
    log_batch,
    mlflow_client,
    pick_device,
    quiet_libraries,
    read_jsonl,
    read_run_id,
    require_dir,
    run_step,
    split_csv,
    write_json,
)

STEP = "evaluate"
KNOWN_METRICS = ("exact_match", "token_f1", "rouge_l", "perplexity")
JUDGE_METRIC = "judge"
LOWER_IS_BETTER = frozenset({"perplexity"})
STABLE_ALIAS = "stable"

# --- metric functions ---------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = frozenset(string.punctuation)
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, remove punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


def token_f1(prediction: str, reference: str) -> float:
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return 1.0 if pred == ref else 0.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(ref)
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_tokens(text: str) -> list[str]:
    return _ROUGE_TOKEN.findall(text.lower())


def rouge_l(prediction: str, reference: str) -> float:
    pred = rouge_tokens(prediction)
    ref = rouge_tokens(reference)
    if not pred or not ref:
        return 1.0 if pred == ref else 0.0
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision = lcs / len(pred)
    recall = lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def perplexity_from_nll(total_nll: float, n_tokens: int) -> float:
    """``exp(total negative log-likelihood / number of tokens)`` (natural log)."""
    if n_tokens <= 0:
        raise ValueError("perplexity needs at least one token")
    return math.exp(total_nll / n_tokens)


# --- gates --------------------------------------------------------------------------------------------

_GATE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+|inf|nan)\s*$")
_REGRESSION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*([0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    threshold: float
    text: str

    def check(self, value: float) -> bool:
        return {
            ">=": value >= self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            "<": value < self.threshold,
            "==": value == self.threshold,
        }[self.op]


@dataclass(frozen=True)
class RegressionGate:
    metric: str
    max_delta: float
    text: str


def parse_gate(text: str) -> Gate:
    m = _GATE.match(text)
    if not m:
        raise UsageError(f"bad --gate '{text}': expected METRIC(>=|<=|>|<|==)NUMBER, e.g. 'exact_match>=0.5'")
    try:
        threshold = float(m.group(3))
    except ValueError:
        raise UsageError(f"bad --gate '{text}': '{m.group(3)}' is not a number") from None
    return Gate(m.group(1), m.group(2), threshold, text.strip())


def parse_regression(text: str) -> RegressionGate:
    m = _REGRESSION.match(text)
    if not m:
        raise UsageError(f"bad --max-regression '{text}': expected METRIC=DELTA, e.g. 'rouge_l=0.02'")
    try:
        delta = float(m.group(2))
    except ValueError:
        raise UsageError(f"bad --max-regression '{text}': '{m.group(2)}' is not a number") from None
    if delta < 0:
        raise UsageError(f"bad --max-regression '{text}': DELTA must be >= 0")
    return RegressionGate(m.group(1), delta, text.strip())


def stable_metrics(
    tracking_uri: str, registered_model: str, alias: str = STABLE_ALIAS
) -> tuple[str | None, dict[str, float]]:
    """Version and ``{metric: value}`` of the stable alias of ``registered_model`` (None, {} if none)."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(tracking_uri)
    try:
        mv = client.get_model_version_by_alias(registered_model, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None, {}
        raise RuntimeStepError(f"cannot read the '{alias}' version of {registered_model}: {exc}") from None
    values: dict[str, float] = {}
    for key, raw in (mv.tags or {}).items():
        if key.startswith("metric."):
            try:
                values[key[len("metric.") :]] = float(raw)
            except ValueError:
                continue
    return str(mv.version), values


def evaluate_gates(
    metrics: dict[str, float],
    gates: Sequence[Gate],
    regressions: Sequence[RegressionGate],
    stable: tuple[str | None, dict[str, float]] = (None, {}),
) -> list[dict[str, Any]]:
    """One result dict per gate: ``gate``, ``passed``, ``value``, ``threshold`` and a ``message``."""
    results: list[dict[str, Any]] = []
    for g in gates:
        value = metrics[g.metric]
        ok = g.check(value)
        results.append(
            {
                "gate": g.text,
                "metric": g.metric,
                "passed": ok,
                "value": value,
                "threshold": g.threshold,
                "message": f"{g.metric} = {value:.6g} (required {g.op} {g.threshold:g})",
            }
        )
    version, baseline = stable
    for rg in regressions:
        value = metrics[rg.metric]
        name = f"max_regression:{rg.text}"
        base = baseline.get(rg.metric)
        if version is None or base is None:
            why = "no stable version" if version is None else f"stable version {version} has no metric.{rg.metric}"
            results.append(
                {
                    "gate": name,
                    "metric": rg.metric,
                    "passed": True,
                    "value": value,
                    "threshold": None,
                    "stable_version": version,
                    "message": f"{why}: regression gate passes",
                }
            )
            continue
        if rg.metric in LOWER_IS_BETTER:
            threshold = base + rg.max_delta
            ok = value <= threshold
            op = "<="
        else:
            threshold = base - rg.max_delta
            ok = value >= threshold
            op = ">="
        results.append(
            {
                "gate": name,
                "metric": rg.metric,
                "passed": ok,
                "value": value,
                "threshold": threshold,
                "stable_version": version,
                "stable_value": base,
                "message": (
                    f"{rg.metric} = {value:.6g} (required {op} {threshold:.6g}: stable v{version} "
                    f"{base:.6g} with allowed regression {rg.max_delta:g})"
                ),
            }
        )
    return results


# --- judge --------------------------------------------------------------------------------------------


def judge_score(url: str, payload: dict[str, str], timeout: float = 30.0) -> float:
    data = json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeStepError(f"judge {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeStepError(f"judge {url} unreachable: {reason}") from None
    try:
        score = json.loads(body)["score"]
        # a number, finite: JSON's true/"0.9" and Python's NaN/Infinity extensions are not scores
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise TypeError(score)
        return float(score)
    except (ValueError, KeyError, TypeError):
        raise RuntimeStepError(f'judge {url} did not answer {{"score": <finite number>}}: {body[:200]!r}') from None


# --- evaluation ---------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    dataset: str
    metrics: list[str] = field(default_factory=lambda: ["exact_match", "token_f1", "rouge_l"])
    model: str | None = None
    base_model: str | None = None
    adapter: str | None = None
    max_new_tokens: int = 32
    judge_url: str | None = None
    judge_timeout: float = 30.0
    gates: list[str] = field(default_factory=list)
    max_regressions: list[str] = field(default_factory=list)
    registered_model: str | None = None
    stable_alias: str = STABLE_ALIAS
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = DEFAULT_EXPERIMENT
    run_id_file: str | None = None
    metrics_out: str | None = None
    predictions_out: str | None = None


@dataclass
class EvalResult:
    metrics: dict[str, float]
    gates: list[dict[str, Any]]
    predictions: list[str]
    run_id: str | None = None

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "gates": self.gates, "passed": self.passed}


def _validate(cfg: EvalConfig) -> tuple[list[Gate], list[RegressionGate]]:
    unknown = [m for m in cfg.metrics if m not in KNOWN_METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(KNOWN_METRICS)}")
    if not cfg.metrics and not cfg.judge_url:
        raise UsageError("no metrics requested (--metrics is empty and no --judge-url)")
    if cfg.max_new_tokens <= 0:
        raise UsageError(f"--max-new-tokens must be > 0, got {cfg.max_new_tokens}")
    if not 0 < cfg.judge_timeout < math.inf:
        raise UsageError(f"--judge-timeout must be a finite number of seconds > 0, got {cfg.judge_timeout}")
    if cfg.metrics_out and Path(cfg.metrics_out).is_dir():
        raise UsageError(f"--metrics-out {cfg.metrics_out} is a directory")
    if cfg.model and (cfg.base_model or cfg.adapter):
        raise UsageError("give either --model (a full model) or --base-model [--adapter], not both")
    if not cfg.model and not cfg.base_model:
        raise UsageError("one of --model or --base-model is required")
    if cfg.adapter and not cfg.base_model:
        raise UsageError("--adapter needs --base-model")
    require_dir(cfg.model or cfg.base_model or "", "--model" if cfg.model else "--base-model")
    if cfg.adapter:
        require_dir(cfg.adapter, "--adapter")
    computed = set(cfg.metrics) | ({JUDGE_METRIC} if cfg.judge_url else set())
    gates = [parse_gate(g) for g in cfg.gates]
    regressions = [parse_regression(r) for r in cfg.max_regressions]
    for name in [g.metric for g in gates] + [r.metric for r in regressions]:
        if name not in computed:
            raise UsageError(
                f"gate on metric '{name}', which is not computed (computed: {', '.join(sorted(computed))})"
            )
    if regressions and not (cfg.registered_model and cfg.mlflow_tracking_uri):
        raise UsageError("--max-regression needs --registered-model and --mlflow-tracking-uri")
    return gates, regressions


def _generate(model: Any, tokenizer: Any, text: str, max_new_tokens: int) -> str:
    import torch

    enc = tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    new = out[0, enc["input_ids"].shape[1] :]
    return str(tokenizer.decode(new, skip_special_tokens=True)).strip()


def _completion_nll(model: Any, tokenizer: Any, text: str, completion: str) -> tuple[float, int]:
    """Sum of -log p over the completion's tokens given ``text`` and its token count."""
    import torch

    prompt_ids: list[int] = tokenizer(text)["input_ids"]
    completion_ids: list[int] = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not completion_ids:
        return 0.0, 0
    if not prompt_ids:  # condition the first completion token on something: bos, else eos
        start_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        prompt_ids = [start_id]
    ids = torch.tensor([prompt_ids + completion_ids], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], dim=-1)
    targets = ids[0, 1:]
    token_lp = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
    start = len(prompt_ids) - 1  # logits at position i predict token i + 1
    return float(-token_lp[start:].sum().item()), len(completion_ids)


def compute_metrics(predictions: Sequence[str], references: Sequence[str], names: Sequence[str]) -> dict[str, float]:
    """Corpus means of the text metrics in ``names`` (perplexity and judge are computed elsewhere)."""
    funcs = {"exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l}
    out: dict[str, float] = {}
    for name in names:
        if name in funcs:
            fn = funcs[name]
            out[name] = sum(fn(p, r) for p, r in zip(predictions, references, strict=True)) / len(references)
    return out


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Run the evaluation described by ``cfg``; writes the metrics file and logs to MLflow if configured."""
    gates, regressions = _validate(cfg)
    records = read_jsonl(cfg.dataset, required=("prompt", "completion"), optional=("context",))
    for number, record in enumerate(records, start=1):
        if not record["prompt"].strip():
            raise UsageError(f"{cfg.dataset}:{number}: the prompt is empty")
        for key, value in record.items():
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise UsageError(f"{cfg.dataset}:{number}: `{key}` holds a lone UTF-16 surrogate "
                                     "(not valid Unicode)") from None

    stable: tuple[str | None, dict[str, float]] = (None, {})
    if regressions and cfg.mlflow_tracking_uri and cfg.registered_model:
        stable = stable_metrics(cfg.mlflow_tracking_uri, cfg.registered_model, cfg.stable_alias)

    quiet_libraries()
    import torch

    t0 = time.perf_counter()
    if cfg.model:
        model = load_causal_lm(cfg.model)
        tokenizer = load_tokenizer(cfg.model)
    else:
        assert cfg.base_model is not None
        model = load_causal_lm(cfg.base_model, cfg.adapter)
        tokenizer = load_tokenizer(cfg.adapter, cfg.base_model)
    model.to(pick_device())
    model.eval()
    torch.manual_seed(0)

    inputs = [format_prompt(r["prompt"], r.get("context")) for r in records]
    references = [r["completion"] for r in records]
    text_metrics = [m for m in cfg.metrics if m != "perplexity"]
    predictions: list[str] = []
    if text_metrics or cfg.judge_url or cfg.predictions_out:
        predictions = [_generate(model, tokenizer, x, cfg.max_new_tokens) for x in inputs]

    metrics = compute_metrics(predictions, references, text_metrics)
    if "perplexity" in cfg.metrics:
        total_nll, n_tok = 0.0, 0
        for x, ref in zip(inputs, references, strict=True):
            nll, n = _completion_nll(model, tokenizer, x, ref)
            total_nll += nll
            n_tok += n
        if n_tok == 0:
            raise UsageError(f"{cfg.dataset}: every completion is empty, perplexity is undefined")
        metrics["perplexity"] = perplexity_from_nll(total_nll, n_tok)
    if cfg.judge_url:
        scores = []
        for rec, pred in zip(records, predictions, strict=True):
            payload = {"prompt": rec["prompt"], "completion": pred, "reference": rec["completion"]}
            if rec.get("context"):
                payload["context"] = rec["context"]
            scores.append(judge_score(cfg.judge_url, payload, cfg.judge_timeout))
        metrics[JUDGE_METRIC] = sum(scores) / len(scores)
    seconds = time.perf_counter() - t0

    gate_results = evaluate_gates(metrics, gates, regressions, stable)
    result = EvalResult(metrics=metrics, gates=gate_results, predictions=predictions)
    if cfg.metrics_out:
        write_json(cfg.metrics_out, {**result.to_json(), "examples": len(records), "seconds": seconds})
    if cfg.predictions_out:
        Path(cfg.predictions_out).parent.mkdir(parents=True, exist_ok=True)
        with open(cfg.predictions_out, "w", encoding="utf-8") as fh:
            for x, ref, pred in zip(inputs, references, predictions, strict=True):
                fh.write(json.dumps({"input": x, "reference": ref, "prediction": pred}) + "\n")

    if cfg.mlflow_tracking_uri:
        client = mlflow_client(cfg.mlflow_tracking_uri)
        run_id = read_run_id(cfg.run_id_file)
        created = False
        if run_id is None:
            exp_id = ensure_experiment(client, cfg.mlflow_experiment)
            run_id = client.create_run(exp_id, tags={"llmops.step": STEP}).info.run_id
            created = True
        log_batch(
            client,
            run_id,
            metrics=[*((k, v, 0) for k, v in metrics.items()), ("eval_passed", float(result.passed), 0)],
            tags={"llmops.eval_passed": str(result.passed).lower()},
        )
        if cfg.metrics_out:
            client.log_artifact(run_id, cfg.metrics_out, "evaluate")
        if created:
            client.set_terminated(run_id, "FINISHED")
        result.run_id = run_id
    return result


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="full model directory (alternative to --base-model [--adapter])")
    p.add_argument("--base-model", help="base model directory")
    p.add_argument("--adapter", help="LoRA adapter directory applied on --base-model")
    p.add_argument("--dataset", required=True, help="JSONL of {prompt, completion[, context]}")
    p.add_argument("--metrics", default="exact_match,token_f1,rouge_l", help="comma list of " + ",".join(KNOWN_METRICS))
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--judge-url", help="LLM-as-judge endpoint: POST {prompt, completion, reference} -> {score}")
    p.add_argument("--judge-timeout", type=float, default=30.0, help="seconds per judge request")
    p.add_argument("--gate", action="append", default=[], help="e.g. 'exact_match>=0.5' (repeatable)")
    p.add_argument("--max-regression", action="append", default=[], help="e.g. 'rouge_l=0.02' vs the stable version")
    p.add_argument("--registered-model", help="registered model whose stable alias is the baseline")
    p.add_argument("--stable-alias", default=STABLE_ALIAS, help="the alias that marks the serving version")
    p.add_argument("--mlflow-tracking-uri", default="")
    p.add_argument("--mlflow-experiment", default=DEFAULT_EXPERIMENT, help="used only when no run id is given")
    p.add_argument("--run-id-file", help="file holding the MLflow run id to log to (from tune)")
    p.add_argument("--metrics-out", help="JSON {metrics, gates, passed}")
    p.add_argument("--predictions-out", help="JSONL of inputs, references and predictions")
    return p


def config_from_args(argv: list[str] | None) -> EvalConfig:
    a = build_parser().parse_args(argv)
    return EvalConfig(
        dataset=a.dataset,
        metrics=split_csv(a.metrics),
        model=a.model,
        base_model=a.base_model,
        adapter=a.adapter,
        max_new_tokens=a.max_new_tokens,
        judge_url=a.judge_url,
        judge_timeout=a.judge_timeout,
        gates=a.gate,
        max_regressions=a.max_regression,
        registered_model=a.registered_model,
        stable_alias=a.stable_alias,
        mlflow_tracking_uri=a.mlflow_tracking_uri or None,
        mlflow_experiment=a.mlflow_experiment,
        run_id_file=a.run_id_file,
        metrics_out=a.metrics_out,
        predictions_out=a.predictions_out,
    )


def main(argv: list[str] | None = None) -> int:
    import sys

    def body() -> int:
        res = evaluate(config_from_args(argv))
        print("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(res.metrics.items())))
        for g in res.gates:
            print(f"evaluate: gate {g['gate']}: {'passed' if g['passed'] else 'FAILED'} - {g['message']}")
        failed = [g for g in res.gates if not g["passed"]]
        for g in failed:
            print(f"evaluate: gate failed: {g['gate']}: {g['message']}", file=sys.stderr)
        return EXIT_GATE_FAILED if failed else 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
