"""tune: LoRA / full fine-tuning on the tiny model, MLflow logging, input validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops_compiler.runtime import tune as tune_mod
from llmops_compiler.runtime.tune import TuneConfig, tune


def _lora_cfg(base: Path, data: Path, out: Path, **kw: object) -> TuneConfig:
    args: dict[str, object] = {
        "base_model": str(base),
        "dataset": str(data),
        "output": str(out),
        "method": "lora",
        "r": 4,
        "alpha": 8,
        "dropout": 0.0,
        "epochs": 100,
        "max_steps": 40,
        "learning_rate": 1e-2,
        "batch_size": 6,
        "seed": 7,
    }
    args.update(kw)
    return TuneConfig(**args)  # type: ignore[arg-type]


@pytest.mark.slow
def test_lora_loss_decreases_and_is_logged_to_mlflow(
    tiny_model_dir: Path, tiny_dataset: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    out = tmp_path / "adapter"
    cfg = _lora_cfg(
        tiny_model_dir,
        tiny_dataset,
        out,
        metrics_out=str(tmp_path / "tune.json"),
        mlflow_tracking_uri=mlflow_uri,
        mlflow_experiment="test-tune-lora",
        run_id_out=str(tmp_path / "run_id"),
    )
    res = tune(cfg)

    assert res.steps == 40
    assert res.last_loss < 0.6 * res.first_loss, res.losses
    assert sum(res.losses[-5:]) / 5 < sum(res.losses[:5]) / 5 - 1.0

    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4
    assert adapter_cfg["lora_alpha"] == 8
    assert sorted(adapter_cfg["target_modules"]) == ["q_proj", "v_proj"]  # peft's default for Llama
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    assert not (out / "model.safetensors").exists()  # adapter only

    metrics = json.loads((tmp_path / "tune.json").read_text())
    assert metrics["steps"] == 40 and len(metrics["losses"]) == 40
    assert metrics["first_loss"] == res.losses[0] and metrics["last_loss"] == res.losses[-1]
    assert metrics["train_seconds"] > 0
    assert 0 < metrics["trainable_params"] < metrics["total_params"]

    run_id = (tmp_path / "run_id").read_text().strip()
    assert run_id == res.run_id
    client = MlflowClient(mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["method"] == "lora"
    assert run.data.params["r"] == "4"
    assert run.data.params["alpha"] == "8"
    assert run.data.params["learning_rate"] == "0.01"
    assert run.data.tags["llmops.step"] == "tune"
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, 41))
    assert run.data.metrics["last_loss"] == pytest.approx(res.last_loss)
    logged = {Path(f.path).name for f in client.list_artifacts(run_id, "model")}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= logged


def test_same_seed_same_losses(tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    a = tune(_lora_cfg(tiny_model_dir, tiny_dataset, tmp_path / "a", max_steps=6, dropout=0.1))
    b = tune(_lora_cfg(tiny_model_dir, tiny_dataset, tmp_path / "b", max_steps=6, dropout=0.1))
    c = tune(_lora_cfg(tiny_model_dir, tiny_dataset, tmp_path / "c", max_steps=6, dropout=0.1, seed=8))
    assert a.losses == b.losses
    assert a.losses != c.losses


def test_epochs_and_max_steps_cap(tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    # 18 examples, batch 6 -> 3 steps per epoch; 2 epochs -> 6 steps; a cap of 4 stops earlier.
    assert tune(_lora_cfg(tiny_model_dir, tiny_dataset, tmp_path / "a", epochs=2, max_steps=-1)).steps == 6
    assert tune(_lora_cfg(tiny_model_dir, tiny_dataset, tmp_path / "b", epochs=2, max_steps=4)).steps == 4


@pytest.mark.slow
def test_full_finetune(tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    rc = tune_mod.main(
        [
            "--base-model", str(tiny_model_dir),
            "--dataset", str(tiny_dataset),
            "--method", "full",
            "--epochs", "50",
            "--max-steps", "20",
            "--learning-rate", "3e-3",
            "--batch-size", "6",
            "--seed", "1",
            "--output", str(out),
            "--metrics-out", str(tmp_path / "m.json"),
            "--run-id-out", str(tmp_path / "run_id"),
        ]
    )  # fmt: skip
    assert rc == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["method"] == "full" and m["steps"] == 20
    assert m["last_loss"] < 0.5 * m["first_loss"]
    assert m["trainable_params"] == m["total_params"]
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()
    assert (tmp_path / "run_id").read_text() == ""  # no MLflow: empty run-id file for the workflow


def test_merged_output_is_the_base_with_the_adapter_merged(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """What a server that loads one directory gets: a full model computing what base + adapter compute."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmops_compiler.runtime._common import load_causal_lm, load_tokenizer

    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    tune(_lora_cfg(tiny_model_dir, tiny_dataset, adapter, max_steps=6, merged_output=str(merged)))
    assert (adapter / "adapter_config.json").is_file()
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    assert (merged / "tokenizer.json").is_file() and not (merged / "adapter_config.json").exists()

    ids = load_tokenizer(str(merged))("Q: What is the capital of Peru?\nA:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        served = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)(ids).logits
        tuned = load_causal_lm(tiny_model_dir, adapter=adapter)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)(ids).logits
    assert torch.allclose(served, tuned, atol=1e-4)
    assert not torch.allclose(served, base, atol=1e-3)  # the adapter did change the model


def test_merged_output_with_a_full_fine_tune_exits_2(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = tune_mod.main(["--base-model", str(tiny_model_dir), "--dataset", str(tiny_dataset), "--method", "full",
                        "--output", str(tmp_path / "out"), "--merged-output", str(tmp_path / "merged")])
    assert rc == 2
    assert capsys.readouterr().err.strip() == (
        "tune: error: --merged-output is for an adapter (lora, qlora); method 'full' saves a whole model already")
    assert not (tmp_path / "out").exists()


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = tune_mod.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_qlora_on_cpu_exits_2(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--base-model", str(tiny_model_dir), "--dataset", str(tiny_dataset), "--method", "qlora"]
    rc, err = _run_main([*argv, "--output", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "qlora" in err and ("CUDA GPU" in err or "bitsandbytes" in err)
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_malformed_jsonl_names_the_line(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n\n{"prompt": "c", "completion": \n')
    argv = ["--base-model", str(tiny_model_dir), "--dataset", str(data), "--output", str(tmp_path / "o")]
    rc, err = _run_main(argv, capsys)
    assert rc == 2
    assert "line 3" in err and "malformed JSON" in err


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        ("", [], "dataset is empty"),
        ('{"prompt": "a"}\n', [], "line 1: missing key 'completion'"),
        ('{"prompt": "a", "completion": 3}\n', [], "line 1: 'completion' must be a string"),
        ('["a", "b"]\n', [], "line 1: expected a JSON object"),
        ('{"prompt": "a", "completion": "b"}\n', ["--r", "0"], "--r must be > 0"),
        ('{"prompt": "a", "completion": "b"}\n', ["--method", "adapterx"], "invalid choice"),
        ('{"prompt": "a", "completion": "b"}\n', ["--base-model", "/proc/llmops-missing/model"], "not a directory"),
    ],
)
def test_bad_input_exits_2(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    extra: list[str],
    expected: str,
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(content)
    argv = ["--base-model", str(tiny_model_dir), "--dataset", str(data), "--output", str(tmp_path / "o")]
    rc, err = _run_main([*argv, *extra], capsys)
    assert rc == 2
    assert expected in err
    assert err.startswith("tune: error:")


def test_missing_dataset_exits_2(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--base-model", str(tiny_model_dir), "--dataset", str(tmp_path / "nope.jsonl")]
    rc, err = _run_main([*argv, "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and "dataset not found" in err


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmops_compiler.runtime.tune, llmops_compiler.runtime.evaluate, "
        "llmops_compiler.runtime.register, llmops_compiler.runtime.register_prompt, "
        "llmops_compiler.runtime.quantize; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


LLAMA_LINEAR = "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (
            "q_proj,v_prj",
            f"tune: error: --target-modules: module 'v_prj' matches no module of the base model "
            f"(its linear layers: {LLAMA_LINEAR})",
        ),
        (
            "qproj,k_proj,o_prj",
            f"tune: error: --target-modules: modules 'qproj', 'o_prj' match no module of the base model "
            f"(its linear layers: {LLAMA_LINEAR})",
        ),
    ],
)
def test_misspelt_target_module_among_good_ones_is_refused(
    tiny_model_dir: Path,
    tiny_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    targets: str,
    expected: str,
) -> None:
    argv = ["--base-model", str(tiny_model_dir), "--dataset", str(tiny_dataset), "--target-modules", targets]
    rc, err = _run_main([*argv, "--max-steps", "1", "--output", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert err.strip() == expected
    assert not (tmp_path / "o").exists()


def test_target_modules_by_qualified_suffix_and_all_linear(
    tiny_model_dir: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    # A dotted suffix selects only the modules under it: the attention projections, not the MLP's.
    tune(_lora_cfg(tiny_model_dir, tiny_dataset, tmp_path / "a", max_steps=1, target_modules=["self_attn.q_proj"]))
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["target_modules"] == ["self_attn.q_proj"]
    tune(_lora_cfg(tiny_model_dir, tiny_dataset, tmp_path / "b", max_steps=1, target_modules=["all-linear"]))
    adapted = set(json.loads((tmp_path / "b" / "adapter_config.json").read_text())["target_modules"])
    assert len(adapted) == 2 * 7  # two layers, seven projections each
    assert {name.rsplit(".", 1)[-1] for name in adapted} == set(LLAMA_LINEAR.split(", ")) - {"lm_head"}
