"""Fine-tune a causal LM on a JSONL dataset of ``{"prompt": ..., "completion": ...}`` lines.

``python -m llmops_compiler.runtime.tune --base-model DIR --dataset FILE --method lora|qlora|full
[--r 8 --alpha 16 --dropout 0.05 --target-modules q_proj,v_proj] [--epochs 1] [--learning-rate 2e-4]
[--max-steps -1] [--batch-size 4] [--seed 0] [--max-length 512] --output DIR [--merged-output DIR]
[--metrics-out FILE] [--mlflow-tracking-uri URI --mlflow-experiment NAME] [--run-id-out FILE]``

Training is a plain, seeded PyTorch loop (AdamW, constant learning rate, gradient clipping at 1.0): each
example is ``tokens(prompt) + tokens(completion) + eos``; the loss is computed on the completion and eos
tokens only (prompt tokens are masked with -100). Batches are right-padded. The dataset is shuffled per
epoch with a generator seeded by ``--seed``. ``--max-steps`` caps the number of optimizer steps
(``-1``: no cap, i.e. ``epochs * ceil(examples / batch_size)`` steps).

``--target-modules`` names the modules LoRA adapts (``q_proj,v_proj``: every module whose qualified name
ends in one of them); a name that matches no module of the base model is an error (exit 2) naming it, and
``all-linear`` selects every linear layer but the output head (peft's shorthand).

``lora`` saves only the adapter (``adapter_config.json`` + weights) and the tokenizer to ``--output``;
``full`` saves the whole model and tokenizer. ``--merged-output`` (``lora``/``qlora`` only) also saves the base
model with the saved adapter merged into its weights (reloaded in float32, so a ``qlora`` base is merged at full
precision) and the tokenizer: one full model directory, for servers that load a single directory (the
reference ``serve`` and vLLM's ``--model``). ``qlora`` loads the base model in 4-bit (bitsandbytes) and
needs a CUDA GPU; without one the step exits 2. With ``--mlflow-tracking-uri`` the step creates a run in
``--mlflow-experiment``, logs the parameters, the loss per step, summary metrics and the output directory
(artifact path ``model``), and writes the run id to ``--run-id-out`` (an empty file without MLflow, so
the workflow's output artifact always exists).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops_compiler.runtime._common import (
    DEFAULT_EXPERIMENT,
    ArgParser,
    UsageError,
    ensure_experiment,
    load_causal_lm,
    load_tokenizer,
    log_batch,
    mlflow_client,
    pick_device,
    quiet_libraries,
    read_jsonl,
    require_dir,
    run_step,
    seed_everything,
    split_csv,
    write_json,
    write_text,
)

STEP = "tune"
METHODS = ("lora", "qlora", "full")
ALL_LINEAR = "all-linear"  # peft's shorthand for every linear layer but the output head


@dataclass
class TuneConfig:
    base_model: str
    dataset: str
    output: str
    method: str = "lora"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)
    epochs: int = 1
    learning_rate: float = 2e-4
    max_steps: int = -1
    batch_size: int = 4
    seed: int = 0
    max_length: int = 512
    merged_output: str | None = None
    metrics_out: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = DEFAULT_EXPERIMENT
    run_id_out: str | None = None


@dataclass
class TuneResult:
    output: str
    losses: list[float]
    steps: int
    train_seconds: float
    import_seconds: float
    load_seconds: float
    save_seconds: float
    examples: int
    trainable_params: int
    total_params: int
    run_id: str | None = None

    @property
    def first_loss(self) -> float:
        return self.losses[0]

    @property
    def last_loss(self) -> float:
        return self.losses[-1]

    def metrics(self) -> dict[str, Any]:
        return {
            "losses": self.losses,
            "first_loss": self.first_loss,
            "last_loss": self.last_loss,
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "import_seconds": self.import_seconds,
            "load_seconds": self.load_seconds,
            "save_seconds": self.save_seconds,
            "examples": self.examples,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
        }


def validate(cfg: TuneConfig) -> None:
    """Cheap checks done before any heavy import."""
    if cfg.method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}, got '{cfg.method}'")
    if cfg.method in ("lora", "qlora"):
        if cfg.r <= 0:
            raise UsageError(f"--r must be > 0, got {cfg.r}")
        if cfg.alpha <= 0:
            raise UsageError(f"--alpha must be > 0, got {cfg.alpha}")
        if not 0.0 <= cfg.dropout < 1.0:
            raise UsageError(f"--dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.epochs <= 0:
        raise UsageError(f"--epochs must be > 0, got {cfg.epochs}")
    if cfg.batch_size <= 0:
        raise UsageError(f"--batch-size must be > 0, got {cfg.batch_size}")
    if not cfg.learning_rate > 0:
        raise UsageError(f"--learning-rate must be > 0, got {cfg.learning_rate}")
    if cfg.max_steps == 0 or cfg.max_steps < -1:
        raise UsageError(f"--max-steps must be -1 (no cap) or > 0, got {cfg.max_steps}")
    if cfg.max_length < 2:
        raise UsageError(f"--max-length must be >= 2, got {cfg.max_length}")
    if cfg.merged_output and cfg.method == "full":
        raise UsageError("--merged-output is for an adapter (lora, qlora); method 'full' saves a whole model already")
    require_dir(cfg.base_model, "--base-model")
    if not (Path(cfg.base_model) / "config.json").is_file():
        raise UsageError(f"--base-model is not a Hugging Face model directory (no config.json): {cfg.base_model}")


def check_qlora_support() -> None:
    """Exit-2 error unless a CUDA GPU and bitsandbytes are available."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise UsageError("method 'qlora' needs a CUDA GPU (4-bit bitsandbytes); none found - use 'lora' on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UsageError("method 'qlora' needs the 'bitsandbytes' package, which is not installed")


def encode_records(
    tokenizer: Any, records: list[dict[str, Any]], max_length: int, dataset: str
) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` per record; labels mask the prompt with -100."""
    eos = tokenizer.eos_token_id
    out: list[tuple[list[int], list[int]]] = []
    for i, rec in enumerate(records, start=1):
        prompt_ids: list[int] = tokenizer(rec["prompt"])["input_ids"]
        completion_ids: list[int] = tokenizer(rec["completion"], add_special_tokens=False)["input_ids"]
        if eos is not None:
            completion_ids = [*completion_ids, eos]
        if not completion_ids:
            raise UsageError(f"{dataset}: record {i}: empty completion")
        ids = (prompt_ids + completion_ids)[:max_length]
        labels = ([-100] * len(prompt_ids) + completion_ids)[:max_length]
        if all(lab == -100 for lab in labels):
            raise UsageError(f"{dataset}: record {i}: prompt fills --max-length {max_length}, no completion left")
        out.append((ids, labels))
    return out


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def unmatched_target_modules(model: Any, target_modules: list[str]) -> list[str]:
    """The names in ``target_modules`` that select no module of ``model``, in the order given.

    A name selects a module when it equals the module's qualified name or is its last dotted components
    (peft's rule for a list of names, ``peft.tuners.tuners_utils.check_target_module_exists``). peft itself
    only fails when *no* name matches, so one misspelt name among good ones would go unnoticed.
    """
    names = [name for name, _ in model.named_modules() if name]
    return [
        target for target in target_modules if not any(name == target or name.endswith(f".{target}") for name in names)
    ]


def require_target_modules_exist(model: Any, target_modules: list[str]) -> None:
    """Raise :class:`UsageError` naming every LoRA target module that matches no module of ``model``."""
    import torch

    missing = unmatched_target_modules(model, target_modules)
    if not missing:
        return
    linear = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)}
    quoted = ", ".join(f"'{m}'" for m in missing)
    noun = "module" if len(missing) == 1 else "modules"
    verb = "matches" if len(missing) == 1 else "match"
    raise UsageError(
        f"--target-modules: {noun} {quoted} {verb} no module of the base model "
        f"(its linear layers: {', '.join(sorted(linear))})"
    )


def _load_model(cfg: TuneConfig) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if cfg.method == "full":
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
        return model

    from peft import LoraConfig, get_peft_model

    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, quantization_config=bnb, device_map={"": 0})
        model = prepare_model_for_kbit_training(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
    targets: list[str] | str | None = cfg.target_modules or None
    if cfg.target_modules and [t.lower() for t in cfg.target_modules] == [ALL_LINEAR]:
        targets = ALL_LINEAR  # peft's shorthand works only as a string, not inside a list
    elif cfg.target_modules:
        require_target_modules_exist(model, cfg.target_modules)
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # e.g. unknown target module names, or an arch without a peft default
        raise UsageError(f"cannot apply LoRA: {exc}") from None


def save_merged(base_model: str, adapter: Path, output: Path, tokenizer: Any) -> None:
    """Write ``base_model`` with the saved ``adapter`` merged into its weights, and ``tokenizer``, to ``output``.

    The adapter is read back from disk, so the merged model is exactly what the adapter files say; the base is
    loaded in float32 on the CPU (a ``qlora`` run's 4-bit base would otherwise be merged in 4 bits)."""
    merged = load_causal_lm(base_model, adapter=adapter, merge=True)
    output.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))


def tune(cfg: TuneConfig) -> TuneResult:
    """Fine-tune according to ``cfg``; writes ``cfg.output`` (+ metrics / run id files, MLflow run)."""
    validate(cfg)
    records = read_jsonl(cfg.dataset, required=("prompt", "completion"))

    t0 = time.perf_counter()
    quiet_libraries()
    import torch

    if cfg.method == "qlora":
        check_qlora_support()
    import transformers  # noqa: F401  (timed as part of start-up)

    if cfg.method != "full":
        import peft  # noqa: F401
    import_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.base_model)
    examples = encode_records(tokenizer, records, cfg.max_length, cfg.dataset)
    model = _load_model(cfg)
    device = pick_device()
    if cfg.method != "qlora":
        model.to(device)
    load_seconds = time.perf_counter() - t1

    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    n_total = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate)

    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps > 0:
        total_steps = min(total_steps, cfg.max_steps)

    client = None
    run_id: str | None = None
    if cfg.mlflow_tracking_uri:
        client = mlflow_client(cfg.mlflow_tracking_uri)
        exp_id = ensure_experiment(client, cfg.mlflow_experiment)
        run = client.create_run(exp_id, tags={"llmops.step": STEP, "mlflow.runName": f"tune-{cfg.method}"})
        run_id = run.info.run_id
        paths = ("metrics_out", "run_id_out", "output", "merged_output")
        params = {k: v for k, v in asdict(cfg).items() if k not in paths}
        params["target_modules"] = ",".join(cfg.target_modules)
        params.pop("mlflow_tracking_uri")
        params.pop("mlflow_experiment")
        params.update(examples=len(examples), trainable_params=n_trainable, total_params=n_total)
        log_batch(client, run_id, params=params)

    try:
        gen = torch.Generator().manual_seed(cfg.seed)
        pad_id = tokenizer.pad_token_id
        losses: list[float] = []
        model.train()
        t2 = time.perf_counter()
        step = 0
        while step < total_steps:
            order = torch.randperm(len(examples), generator=gen).tolist()
            for start in range(0, len(order), cfg.batch_size):
                if step >= total_steps:
                    break
                batch = _collate([examples[i] for i in order[start : start + cfg.batch_size]], pad_id)
                batch = {k: v.to(model.device) for k, v in batch.items()}
                loss = model(**batch).loss
                if not torch.isfinite(loss):
                    raise RuntimeError(f"loss became {loss.item()} at step {step + 1}; lower --learning-rate")
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.item()))
                step += 1
        train_seconds = time.perf_counter() - t2

        t3 = time.perf_counter()
        out = Path(cfg.output)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        if cfg.merged_output:
            save_merged(cfg.base_model, out, Path(cfg.merged_output), tokenizer)
        save_seconds = time.perf_counter() - t3

        result = TuneResult(
            output=str(out),
            losses=losses,
            steps=step,
            train_seconds=train_seconds,
            import_seconds=import_seconds,
            load_seconds=load_seconds,
            save_seconds=save_seconds,
            examples=len(examples),
            trainable_params=n_trainable,
            total_params=n_total,
            run_id=run_id,
        )
        metrics = {"method": cfg.method, **result.metrics()}
        if cfg.metrics_out:
            write_json(cfg.metrics_out, metrics)

        if client is not None and run_id is not None:
            per_step = [("loss", v, i + 1) for i, v in enumerate(losses)]
            summary = [
                (k, float(metrics[k]), step)
                for k in ("first_loss", "last_loss", "train_seconds", "load_seconds", "steps")
            ]
            log_batch(client, run_id, metrics=per_step + summary)
            client.log_artifacts(run_id, str(out), "model")
            if cfg.metrics_out:
                client.log_artifact(run_id, cfg.metrics_out, "tune")
            client.set_terminated(run_id, "FINISHED")
    except BaseException:
        if client is not None and run_id is not None:
            client.set_terminated(run_id, "FAILED")
        raise

    if cfg.run_id_out:
        write_text(cfg.run_id_out, run_id or "")
    return result


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--base-model", required=True, help="local Hugging Face model directory")
    p.add_argument("--dataset", required=True, help="JSONL file of {prompt, completion}")
    p.add_argument("--method", default="lora", choices=METHODS)
    p.add_argument("--r", type=int, default=8, help="LoRA rank")
    p.add_argument("--alpha", type=int, default=16, help="LoRA alpha")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout")
    p.add_argument(
        "--target-modules",
        default="",
        help="comma list of module names, each of which must match a module, or all-linear; "
        "empty: peft's default for the arch",
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--max-steps", type=int, default=-1, help="cap on optimizer steps; -1: no cap")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-length", type=int, default=512, help="truncate examples to this many tokens")
    p.add_argument("--output", required=True, help="directory for the adapter / full model + tokenizer")
    p.add_argument("--merged-output", help="lora/qlora: also save the base model with the adapter merged, here")
    p.add_argument("--metrics-out", help="JSON file with losses, first/last loss, steps, seconds")
    p.add_argument("--mlflow-tracking-uri", default="", help="log to MLflow when given")
    p.add_argument("--mlflow-experiment", default=DEFAULT_EXPERIMENT)
    p.add_argument("--run-id-out", help="file receiving the MLflow run id (empty without MLflow)")
    return p


def config_from_args(argv: list[str] | None) -> TuneConfig:
    a = build_parser().parse_args(argv)
    return TuneConfig(
        base_model=a.base_model,
        dataset=a.dataset,
        output=a.output,
        method=a.method,
        r=a.r,
        alpha=a.alpha,
        dropout=a.dropout,
        target_modules=split_csv(a.target_modules),
        epochs=a.epochs,
        learning_rate=a.learning_rate,
        max_steps=a.max_steps,
        batch_size=a.batch_size,
        seed=a.seed,
        max_length=a.max_length,
        merged_output=a.merged_output,
        metrics_out=a.metrics_out,
        mlflow_tracking_uri=a.mlflow_tracking_uri or None,
        mlflow_experiment=a.mlflow_experiment,
        run_id_out=a.run_id_out,
    )


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        res = tune(config_from_args(argv))
        print(
            f"tune: {res.steps} steps, loss {res.first_loss:.4f} -> {res.last_loss:.4f}, "
            f"{res.train_seconds:.1f}s training; saved to {res.output}"
            + (f"; mlflow run {res.run_id}" if res.run_id else "")
        )
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
