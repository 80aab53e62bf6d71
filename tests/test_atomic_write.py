"""A failed or killed compile leaves generated/ exactly as it was; files the compiler does not own survive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic import write_project

from llmops_compiler import api, conventions
from llmops_compiler.diagnostics import CompileError


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_one_bad_spec_writes_nothing(example_copy: Path) -> None:
    output = example_copy / "generated"
    before = _tree(output)
    bad = example_copy / "specs/prompts/answer.yaml"
    bad.write_text(bad.read_text().replace("model: support-llm", "model: support-lm"))
    with pytest.raises(CompileError) as error:
        api.compile_project(example_copy / "specs", output)
    assert any("Model `support-lm`" in d.message for d in error.value.diagnostics)
    assert _tree(output) == before
    assert not list(example_copy.glob(".generated.llmops-tmp-*"))


def test_a_bad_spec_never_creates_the_output_folder(example_copy: Path) -> None:
    (example_copy / "specs/extra.yaml").write_text("apiVersion: llmops.dev/v1alpha1\nkind: Modle\n")
    with pytest.raises(CompileError):
        api.compile_project(example_copy / "specs", example_copy / "fresh")
    assert not (example_copy / "fresh").exists()


def test_files_not_in_the_manifest_are_never_deleted(example_copy: Path) -> None:
    output = example_copy / "generated"
    (output / "README.md").write_text("hand-written notes\n")
    (output / "prod" / "extra-secret-sealed.yaml").write_text("kind: SealedSecret\n")
    tool = example_copy / "specs/tools/order-status.yaml"
    tool.unlink()  # the chain uses the tool, so its tool step goes too
    chain = example_copy / "specs/chains/support-answer.yaml"
    text = chain.read_text()
    chain.write_text(text.replace(
        "    - name: order\n      tool: order-status\n      inputs:\n        order_id: input.order_id\n", ""))
    result = api.compile_project(example_copy / "specs", output)
    assert (output / "README.md").read_text() == "hand-written notes\n"
    assert (output / "prod" / "extra-secret-sealed.yaml").exists()
    owned = json.loads((output / conventions.MANIFEST_FILE).read_text())["files"]
    assert "README.md" not in owned
    assert "prod/configmaps/chain-support-answer.configmap.yaml" in result.written


def test_an_owned_file_that_is_no_longer_produced_is_removed(example_copy: Path) -> None:
    output = example_copy / "generated"
    (example_copy / "specs/prompts/summarize-ticket.yaml").unlink()
    result = api.compile_project(example_copy / "specs", output)
    removed_prompts = [path for path in result.removed if "prompt-summarize-ticket-" in path]
    assert len(removed_prompts) == 3  # one ConfigMap per environment
    # The prompt-registration Job is named by the prompts' content, so it is replaced as well.
    assert set(result.removed) - set(removed_prompts) == {
        path for path in result.removed if "/jobs/register-prompts-" in path
    }
    assert not list(output.rglob("prompt-summarize-ticket-*"))


def test_a_compile_refuses_to_overwrite_a_file_it_does_not_own(tmp_path: Path, example_copy: Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "argocd").mkdir()
    (output / "argocd" / "root.yaml").write_text("# mine\n")
    with pytest.raises(CompileError) as error:
        api.compile_project(example_copy / "specs", output)
    assert error.value.diagnostics[0].code == "LLM503"
    assert (output / "argocd" / "root.yaml").read_text() == "# mine\n"


@pytest.mark.slow
def test_sigkill_mid_write_leaves_the_output_untouched(tmp_path: Path) -> None:
    specs = write_project(tmp_path, 1000, environments=3)  # about 3,900 files
    output = tmp_path / "generated"
    subprocess.run([sys.executable, "-m", "llmops_compiler.cli", "compile", str(specs), "-o", str(output)],
                   check=True, capture_output=True)
    before = _tree(output)
    # Change every prompt so that the next compile rewrites most files.
    for prompt in specs.glob("prompts/*.yaml"):
        prompt.write_text(prompt.read_text().replace("You answer", "You carefully answer"))
    for _attempt in range(20):
        process = subprocess.Popen(
            [sys.executable, "-m", "llmops_compiler.cli", "compile", str(specs), "-o", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        staged = False
        while time.monotonic() < deadline and process.poll() is None:
            staging = list(tmp_path.glob(".generated.llmops-tmp-*"))
            if staging and sum(1 for _ in staging[0].rglob("*.yaml")) > 200:
                staged = True
                break
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        if staged:
            break
    assert staged, "the compile finished before it could be killed mid-write"
    assert _tree(output) == before, "a killed compile changed the output"
    # The next compile cleans up the abandoned staging folder and succeeds.
    subprocess.run([sys.executable, "-m", "llmops_compiler.cli", "compile", str(specs), "-o", str(output)],
                   check=True, capture_output=True)
    assert not list(tmp_path.glob(".generated.llmops-tmp-*"))
    assert _tree(output) != before
