"""A tiny, locally built causal LM for tests and benchmarks (no hub download).

``build_tiny_model(dir)`` trains a byte-level BPE tokenizer on the small corpus below, wraps it as a
``PreTrainedTokenizerFast`` and saves it together with a randomly initialised 2-layer Llama
(hidden 64, 2 heads) under ``dir``. Everything is seeded, so two builds give the same weights.
Llama is used rather than GPT-2 because its projections are ``nn.Linear`` (GPT-2 uses ``Conv1D``),
which is what LoRA targets by default and what dynamic int8 quantization replaces.
"""

from __future__ import annotations

import json
from pathlib import Path

SEED = 1234
VOCAB_SIZE = 400

_CAPITALS: tuple[tuple[str, str], ...] = (
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Kenya", "Nairobi"),
    ("Chile", "Santiago"),
    ("Cuba", "Havana"),
    ("Greece", "Athens"),
)

_COLOURS: tuple[tuple[str, str], ...] = (
    ("the sky", "blue"),
    ("grass", "green"),
    ("snow", "white"),
    ("coal", "black"),
    ("a banana", "yellow"),
    ("a tomato", "red"),
)

_EXTRA_TEXT = """\
The quick brown fox jumps over the lazy dog. A model is trained on data and evaluated on held out data.
Prompts are templates with variables. The cat sat on the mat. Numbers: one two three four five six seven.
Question and answer pairs teach the model to respond. Low rank adapters change few parameters.
"""


def corpus() -> list[str]:
    """The in-repo training corpus for the tokenizer."""
    lines = [f"Q: What is the capital of {c}?\nA: {city}" for c, city in _CAPITALS]
    lines += [f"Q: What colour is {thing}?\nA: {colour}" for thing, colour in _COLOURS]
    lines += _EXTRA_TEXT.splitlines()
    return lines


def dataset_records() -> list[dict[str, str]]:
    """Prompt/completion pairs (a leading space on the completion, as in a Q/A transcript)."""
    recs = [{"prompt": f"Q: What is the capital of {c}?\nA:", "completion": f" {city}"} for c, city in _CAPITALS]
    recs += [{"prompt": f"Q: What colour is {t}?\nA:", "completion": f" {col}"} for t, col in _COLOURS]
    return recs


def write_dataset(path: Path, records: list[dict[str, str]] | None = None) -> Path:
    """Write records as JSONL (default: ``dataset_records()``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for rec in records if records is not None else dataset_records():
            fh.write(json.dumps(rec) + "\n")
    return path


def build_tiny_model(out_dir: Path, *, seed: int = SEED, vocab_size: int = VOCAB_SIZE) -> Path:
    """Build and save a tiny tokenizer + Llama causal LM under ``out_dir``; returns ``out_dir``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from llmops_compiler.runtime._common import quiet_libraries

    quiet_libraries()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    fast.save_pretrained(str(out_dir))

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
        # Larger than the usual 0.02 so the random lm_head can produce peaked logits: LoRA on q/v alone
        # then lowers the loss clearly within a few dozen steps.
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(str(out_dir))
    return out_dir
