"""Where the example project lives, for tests that import it (conftest modules are not importable by name:
there are several)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SPECS = ROOT / "specs"
EXAMPLE_GENERATED = ROOT / "generated"
