"""Where the example project lives, for tests that import it (conftest modules are not importable by name:
there are several)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SPECS = ROOT / "specs"
EXAMPLE_GENERATED = ROOT / "generated"


def run_llmops(*arguments: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m llmops_compiler.cli ARGUMENTS`` in a fresh process, as a user runs it (signals, locks and
    forking behave as in the shell): its exit code, stdout and stderr as text. ``env`` is added to this
    process's environment; ``timeout`` (seconds) turns a hang into a failure."""
    return subprocess.run([sys.executable, "-m", "llmops_compiler.cli", *arguments], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
                          check=False)
