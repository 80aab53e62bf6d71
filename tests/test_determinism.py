"""Same specs, same bytes: under any PYTHONHASHSEED, any file creation order, any document order."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from project_paths import EXAMPLE_SPECS, run_llmops


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _shuffled_copy(source: Path, destination: Path, seed: int) -> None:
    """Copy the specs creating files and folders in a random order, with multi-document files reordered."""
    rng = random.Random(seed)
    files = [p for p in source.rglob("*") if p.is_file()]
    rng.shuffle(files)
    for path in files:
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text()
        if path.suffix == ".yaml" and "\n---\n" in text:
            documents = text.split("\n---\n")
            rng.shuffle(documents)
            text = "\n---\n".join(document.strip("\n") + "\n" for document in documents)
        target.write_text(text)


@pytest.mark.slow
def test_identical_bytes_across_hash_seeds_and_file_orders(tmp_path: Path) -> None:
    outputs = []
    for run, seed in enumerate(["0", "1", "4242", "random"]):
        specs = tmp_path / f"run{run}" / "specs"
        _shuffled_copy(EXAMPLE_SPECS, specs, seed=run)
        output = tmp_path / f"run{run}" / "generated"
        result = subprocess.run(
            [sys.executable, "-m", "llmops_compiler.cli", "compile", str(specs), "-o", str(output)],
            capture_output=True, text=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(_tree(output))
    assert all(output == outputs[0] for output in outputs[1:])
    assert len(outputs[0]) > 40


def test_compiling_twice_writes_nothing_the_second_time(example_copy: Path) -> None:
    from llmops_compiler import api

    output = example_copy / "generated"
    before = {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.is_file()}
    result = api.compile_project(example_copy / "specs", output)
    assert result.unchanged and not result.written
    assert {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("spelling", [".", "./", "../specs", "../specs/"])
def test_the_output_does_not_depend_on_how_the_specs_folder_is_spelled(example_copy: Path, spelling: str) -> None:
    """`llmops check .` run inside specs/ agrees with a compile run from the project (the manifest's digest and
    the file names both come from the folder's absolute path), and so does a compile."""
    cache_folder = {"LLMOPS_CACHE_DIR": str(example_copy / ".cache")}

    def llmops(*arguments: str) -> subprocess.CompletedProcess[str]:
        return run_llmops(*arguments, cwd=example_copy / "specs", env=cache_folder)

    checked = llmops("check", spelling, "-o", "../generated", "--no-cache")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    compiled = llmops("compile", spelling, "-o", "../generated", "--no-cache")
    assert compiled.returncode == 0 and "up to date" in compiled.stdout, compiled.stdout + compiled.stderr
