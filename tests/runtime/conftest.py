"""Shared fixtures for the runtime step tests: a tiny local causal LM, its dataset and a sqlite MLflow store.

Nothing is downloaded: the model and tokenizer are built from an in-repo corpus
(``llmops_compiler.runtime._tiny``) and the hub is switched off for this process and its subprocesses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Llama (2 layers, hidden 64, 2 heads) + byte-level BPE tokenizer (vocab 400)."""
    from llmops_compiler.runtime._tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JSONL of 18 ``{"prompt", "completion"}`` Q/A pairs the tiny model can learn in a few dozen steps."""
    from llmops_compiler.runtime._tiny import write_dataset

    return write_dataset(tmp_path_factory.mktemp("data") / "train.jsonl")


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sqlite:///<tmp>/mlflow.db`` with every artifact under ``<tmp>/artifacts`` (shared by the session).

    The schema is created up front with the temp artifact root (so the Default experiment's artifacts
    land there too), and ``LLMOPS_MLFLOW_ARTIFACT_ROOT`` makes the steps create their own experiments
    under it. Tests use unique experiment / model / prompt names.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from llmops_compiler.runtime._common import ARTIFACT_ROOT_ENV, quiet_libraries

    quiet_libraries()
    root = tmp_path_factory.mktemp("mlflow")
    artifacts = root / "artifacts"
    artifacts.mkdir()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    SqlAlchemyStore(uri, str(artifacts))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ARTIFACT_ROOT_ENV, str(artifacts))
        yield uri


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for ``python -m llmops_compiler.runtime.<step>`` subprocesses (offline, repo on path)."""
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
