"""Spec files that are not regular files: each gets a diagnostic naming the file (never a hang or exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _validate(specs: Path) -> subprocess.CompletedProcess[str]:
    """`llmops validate` in a process of its own, bounded in time: a FIFO must not hang it."""
    return subprocess.run([sys.executable, "-m", "llmops_compiler.cli", "validate", str(specs)],
                          capture_output=True, text=True, timeout=60, cwd=specs.parent)


def test_fifos_links_and_folders_named_like_specs(example_copy: Path, tmp_path: Path) -> None:
    specs = example_copy / "specs"
    os.mkfifo(specs / "pipe.yaml")
    os.symlink("nowhere.yaml", specs / "dangling.yaml")
    os.symlink("loop-b.yaml", specs / "loop-a.yaml")
    os.symlink("loop-a.yaml", specs / "loop-b.yaml")
    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: llmops.dev/v1alpha1\n")
    os.symlink(outside, specs / "escape.yaml")
    (tmp_path / "shared").mkdir()
    os.symlink(tmp_path / "shared", specs / "linked-folder.yaml")
    os.symlink("project.yaml", specs / "alias.yml")  # inside the folder: read, and a duplicate Project
    result = _validate(specs)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    expected = [
        "specs/dangling.yaml:1:1: error[LLM008]: this symbolic link points to `nowhere.yaml`, which does not exist",
        "specs/escape.yaml:1:1: error[LLM008]: this symbolic link points to "
        f"`{outside}`, outside the specs folder",
        "specs/linked-folder.yaml:1:1: error[LLM008]: this symbolic link points to "
        f"`{tmp_path / 'shared'}`, outside the specs folder",
        "specs/loop-a.yaml:1:1: error[LLM008]: this symbolic link never reaches a file: it loops (it points to "
        "`loop-b.yaml`)",
        "specs/loop-b.yaml:1:1: error[LLM008]: this symbolic link never reaches a file: it loops (it points to "
        "`loop-a.yaml`)",
        "specs/pipe.yaml:1:1: error[LLM008]: this is a named pipe (FIFO), not a spec file",
        "specs/project.yaml:6:9: error[LLM301]: Project `support-assistant` is already defined at "
        "specs/alias.yml:6:9",
    ]
    assert [line for line in lines if "error[" in line] == expected
    # A folder (inside the specs folder) named like a spec file is refused as well.
    (specs / "folder.yaml").mkdir()
    os.remove(specs / "linked-folder.yaml")
    assert "specs/folder.yaml" not in _validate(specs).stderr  # a real folder is walked, not read


def test_a_symlinked_specs_folder_is_followed(example_copy: Path) -> None:
    os.symlink(example_copy / "specs", example_copy / "linked-specs")
    result = _validate(example_copy / "linked-specs")
    assert result.returncode == 0, result.stderr
