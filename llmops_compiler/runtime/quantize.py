"""Post-training dynamic int8 quantization of a causal LM (optionally merging a LoRA adapter first).

``python -m llmops_compiler.runtime.quantize --model-dir DIR [--adapter DIR] --output DIR [--dtype int8]``

Every ``torch.nn.Linear`` (attention/MLP projections and the LM head) is replaced by a dynamically
quantized int8 linear (``torch.ao.quantization.quantize_dynamic``: int8 weights with a per-tensor scale,
activations quantized on the fly; a CPU inference format). The output directory holds:

* ``quantized_state_dict.pt``: the quantized model's state dict (loadable with ``weights_only=True``);
* ``config.json`` / ``generation_config.json`` and the tokenizer, so the model can be rebuilt;
* ``quantization_report.json``: dtype, quantized module count, and the serialized state-dict size before
  and after (bytes, ratio).

:func:`load_quantized` rebuilds the model from such a directory.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_compiler.runtime._common import (
    ArgParser,
    UsageError,
    load_causal_lm,
    load_tokenizer,
    quiet_libraries,
    require_dir,
    run_step,
    write_json,
)

STEP = "quantize"
STATE_DICT_FILE = "quantized_state_dict.pt"
REPORT_FILE = "quantization_report.json"
DTYPES = ("int8",)


@dataclass
class QuantizeResult:
    output: str
    size_before: int
    size_after: int
    quantized_modules: int

    @property
    def ratio(self) -> float:
        return self.size_after / self.size_before


def _state_dict_bytes(model: Any) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def _quantize_linear_int8(model: Any) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)


def quantize(model_dir: str, output: str, adapter: str | None = None, dtype: str = "int8") -> QuantizeResult:
    """Quantize ``model_dir`` (+ merged ``adapter``) into ``output``; returns sizes."""
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got '{dtype}'")
    require_dir(model_dir, "--model-dir")
    quiet_libraries()
    import torch

    t0 = time.perf_counter()
    model = load_causal_lm(model_dir, adapter, merge=True)
    tokenizer = load_tokenizer(adapter, model_dir)
    model.eval()
    n_linear = sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear))
    if n_linear == 0:
        raise UsageError(f"{model_dir}: the model has no torch.nn.Linear layers to quantize")
    size_before = _state_dict_bytes(model)
    qmodel = _quantize_linear_int8(model)
    size_after = _state_dict_bytes(qmodel)

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(qmodel.state_dict(), out / STATE_DICT_FILE)
    qmodel.config.save_pretrained(str(out))
    if getattr(qmodel, "generation_config", None) is not None:
        qmodel.generation_config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    result = QuantizeResult(str(out), size_before, size_after, n_linear)
    write_json(
        out / REPORT_FILE,
        {
            "dtype": dtype,
            "method": "torch.ao.quantization.quantize_dynamic(nn.Linear, qint8)",
            "source_model": str(model_dir),
            "adapter": str(adapter) if adapter else None,
            "quantized_modules": n_linear,
            "size_before_bytes": size_before,
            "size_after_bytes": size_after,
            "ratio": result.ratio,
            "seconds": time.perf_counter() - t0,
        },
    )
    return result


def load_quantized(path: str | Path) -> Any:
    """Rebuild a model saved by :func:`quantize` (CPU, eval mode)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    d = require_dir(path, "quantized model directory")
    config = AutoConfig.from_pretrained(str(d))
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    qmodel = _quantize_linear_int8(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torch.load(d / STATE_DICT_FILE, map_location="cpu", weights_only=True)
    qmodel.load_state_dict(state)
    return qmodel


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True, help="full (or base) model directory")
    p.add_argument("--adapter", help="LoRA adapter to merge into --model-dir before quantizing")
    p.add_argument("--output", required=True)
    p.add_argument("--dtype", default="int8", choices=DTYPES)
    return p


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        a = build_parser().parse_args(argv)
        r = quantize(a.model_dir, a.output, a.adapter, a.dtype)
        print(
            f"{STEP}: {r.quantized_modules} Linear layers -> int8; state dict {r.size_before} -> "
            f"{r.size_after} bytes ({r.ratio:.2f}x); saved to {r.output}"
        )
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
