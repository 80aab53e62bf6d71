"""`llmops compile --strict`: every generated object against its real schema, a dropped key is a finding."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from llmops_compiler.targets import argo_workflows

Cli = Callable[..., Result]


def test_strict_compile_of_the_example_passes(cli: Cli, example_copy: Path) -> None:
    result = cli("compile", "--strict", cwd=example_copy)
    assert result.exit_code == 0, result.output


def test_strict_compile_fails_on_a_key_the_model_would_drop(
    cli: Cli, example_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key hera's WorkflowTemplate model does not know (a typo a target could make) passes the plain compile
    and fails the strict one, at the spec that produced it, and nothing is written."""
    original = argo_workflows.tune_workflow_template

    def with_typo(*args: Any) -> dict[str, Any]:
        body = original(*args)
        body["spec"]["podGc"] = {"strategy": "OnPodSuccess"}
        return body

    monkeypatch.setattr(argo_workflows, "tune_workflow_template", with_typo)
    before = {path: path.read_bytes() for path in (example_copy / "generated").rglob("*") if path.is_file()}
    strict = cli("compile", "--strict", cwd=example_copy)
    assert strict.exit_code == 1
    assert ("specs/models/support-llm.yaml:5:9: error[LLM510]: generated WorkflowTemplate `tune-support-llm` "
            "(dev/workflows/tune-support-llm.workflowtemplate.yaml) does not conform to its schema: WorkflowTemplate "
            "does not know `spec.podGc` (dropped on validation)") in strict.stderr
    after = {path: path.read_bytes() for path in (example_copy / "generated").rglob("*") if path.is_file()}
    assert after == before
    assert cli("compile", cwd=example_copy).exit_code == 0


def test_compile_never_imports_the_schema_models(example_copy: Path) -> None:
    probe = (
        "import sys; from pathlib import Path; from llmops_compiler import api; "
        f"api.build(Path({str(example_copy / 'specs')!r})); "
        "print(sorted(m for m in ('hera', 'kubernetes', 'kubernetes_validate', 'cloudcoil', 'torch', 'mlflow', "
        "'requests.sessions') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
