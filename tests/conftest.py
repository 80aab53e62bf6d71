"""Shared fixtures: the example project, copies of it, and a CLI runner."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from project_paths import EXAMPLE_GENERATED, EXAMPLE_SPECS

# Runtime steps must never reach a model hub; everything they load is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The suite's compiles (in-process and in subprocesses) cache in a temp folder, never in the user's
    ``~/.cache`` (tests that study the cache point it elsewhere themselves)."""
    folder = tmp_path_factory.mktemp("llmops-cache")
    folder.chmod(0o700)
    os.environ["LLMOPS_CACHE_DIR"] = str(folder)


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A writable copy of the example project (specs/ and generated/) in a temp folder."""
    shutil.copytree(EXAMPLE_SPECS, tmp_path / "specs")
    shutil.copytree(EXAMPLE_GENERATED, tmp_path / "generated")
    return tmp_path


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run `llmops` in-process; stdout and stderr are kept apart."""
    from llmops_compiler.cli import main

    def run(*args: str, cwd: Path | None = None) -> Result:
        runner = CliRunner()
        previous = Path.cwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            return runner.invoke(main, list(args), catch_exceptions=False)
        finally:
            os.chdir(previous)

    return run
