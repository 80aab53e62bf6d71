"""quantize: dynamic int8 quantization of the tiny model (with and without a merged LoRA adapter)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops_compiler.runtime import quantize as qmod
from llmops_compiler.runtime._common import load_causal_lm, load_tokenizer
from llmops_compiler.runtime.quantize import load_quantized, quantize

PROMPT = "Q: What is the capital of France?\nA:"


def _logits(model: Any, tokenizer: Any) -> Any:
    import torch

    enc = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits[0]


def _assert_close(reference: Any, quantized: Any) -> None:
    """int8 weights *and* dynamically quantized activations: close, not equal (random model, flat logits)."""
    import torch

    cos = torch.nn.functional.cosine_similarity(reference.flatten(), quantized.flatten(), dim=0).item()
    assert cos > 0.98
    assert (reference - quantized).abs().mean().item() < 0.15 * reference.std().item()
    # The original greedy token stays among the quantized model's top 5 at every position.
    top5 = quantized.topk(5, dim=-1).indices
    assert (top5 == reference.argmax(-1, keepdim=True)).any(-1).all()


def test_quantize_smaller_and_close(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q"
    assert qmod.main(["--model-dir", str(tiny_model_dir), "--output", str(out), "--dtype", "int8"]) == 0
    assert "Linear layers -> int8" in capsys.readouterr().out

    report = json.loads((out / "quantization_report.json").read_text())
    assert report["dtype"] == "int8"
    assert report["quantized_modules"] == 2 * 7 + 1  # q,k,v,o,gate,up,down per layer + lm_head
    assert report["size_after_bytes"] < 0.6 * report["size_before_bytes"]
    assert report["ratio"] == pytest.approx(report["size_after_bytes"] / report["size_before_bytes"])
    assert (out / "quantized_state_dict.pt").stat().st_size < (tiny_model_dir / "model.safetensors").stat().st_size
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()

    qmodel = load_quantized(out)
    assert "DynamicQuantizedLinear" in repr(qmodel)
    tok = load_tokenizer(out)
    _assert_close(_logits(load_causal_lm(tiny_model_dir), tok), _logits(qmodel, tok))


def test_quantize_merges_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    base = load_causal_lm(tiny_model_dir)
    torch.manual_seed(0)
    # init_lora_weights=False: non-zero B, so the adapter really changes the outputs.
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, task_type="CAUSAL_LM"))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter))

    result = quantize(str(tiny_model_dir), str(tmp_path / "q"), adapter=str(adapter))
    assert result.ratio < 0.6
    report = json.loads((tmp_path / "q" / "quantization_report.json").read_text())
    assert report["adapter"] == str(adapter)

    tok = load_tokenizer(tiny_model_dir)
    merged = _logits(load_causal_lm(tiny_model_dir, adapter, merge=True), tok)
    plain = _logits(load_causal_lm(tiny_model_dir), tok)
    assert not torch.allclose(merged, plain, atol=1e-3)  # the adapter matters
    _assert_close(merged, _logits(load_quantized(tmp_path / "q"), tok))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model-dir", "/proc/llmops-missing", "--output", "o"], "--model-dir is not a directory"),
        (["--model-dir", ".", "--output", "o", "--dtype", "int4"], "invalid choice: 'int4'"),
    ],
)
def test_bad_input_exits_2(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert qmod.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.startswith("quantize: error:")
