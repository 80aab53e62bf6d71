"""A failed or killed compile leaves generated/ exactly as it was; files the compiler does not own survive."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from project_paths import run_llmops
from synthetic import write_project

from llmops_compiler import api, conventions, emit
from llmops_compiler.cache import Cache
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


@pytest.mark.parametrize("cached", [False, True])
def test_a_manifest_naming_paths_outside_the_output_folder_is_not_followed(example_copy: Path, tmp_path: Path,
                                                                          cached: bool) -> None:
    """The manifest says which files a compile owns (and may remove); a path in it that leaves the output folder
    (absolute, or through `..`) is ignored, so a tampered manifest cannot make a compile read or delete a file
    elsewhere."""
    output = example_copy / "generated"
    victims = [example_copy / "victim.yaml", tmp_path / "victim-absolute.yaml"]
    for victim in victims:
        victim.write_text("kept: true\n")
    manifest_path = output / conventions.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["../victim.yaml"] = manifest["files"][str(victims[1])] = "sha256:0"
    manifest["files"]["dev/../../victim.yaml"] = "sha256:0"
    manifest_path.write_text(json.dumps(manifest))
    cache = Cache.open(tmp_path / "cache") if cached else None
    result = api.compile_project(example_copy / "specs", output, cache=cache)
    assert not any(".." in path or path.startswith("/") for path in [*result.written, *result.removed])
    assert all(victim.read_text() == "kept: true\n" for victim in victims)
    assert "../victim.yaml" not in json.loads(manifest_path.read_text())["files"]


@pytest.mark.parametrize("replaced", [conventions.MANIFEST_FILE, "dev/kustomization.yaml"])
@pytest.mark.parametrize("entry", ["fifo", "link"])
def test_an_owned_file_replaced_by_a_fifo_or_link_is_never_waited_on_or_followed(
        example_copy: Path, tmp_path: Path, replaced: str, entry: str) -> None:
    """`check` and `compile` read the manifest and every owned file; one replaced by a FIFO (whose opening would
    wait for a writer forever) or by a link (to a file elsewhere) is read as missing, and the link's target is
    untouched. `check` reports the output stale; `compile` puts a regular file back, except for the manifest:
    without it no file is known to be the compiler's, so it refuses to overwrite them (as when it is deleted)."""
    output = example_copy / "generated"
    expected = _tree(output)
    target = output / replaced
    target.unlink()
    outside = tmp_path / "outside.yaml"
    outside.write_text("elsewhere: true\n")
    if entry == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(outside)
    def llmops(*arguments: str) -> subprocess.CompletedProcess[str]:
        return run_llmops(*arguments, cwd=example_copy, env={"LLMOPS_CACHE_DIR": str(tmp_path / "cache")},
                          timeout=120)

    checked = llmops("check")
    assert checked.returncode == 1, checked.stderr
    assert "Traceback" not in checked.stderr
    compiled = llmops("compile")
    assert outside.read_text() == "elsewhere: true\n"
    if replaced == conventions.MANIFEST_FILE:
        assert compiled.returncode == 1
        assert "error[LLM503]" in compiled.stderr and "Traceback" not in compiled.stderr
        return
    assert compiled.returncode == 0, compiled.stderr
    assert stat.S_ISREG(os.lstat(target).st_mode)
    assert _tree(output) == expected
    assert llmops("check").returncode == 0


def test_check_and_diff_never_read_through_a_linked_folder_named_in_the_manifest(example_copy: Path,
                                                                                  tmp_path: Path) -> None:
    """A manifest path below a link to a folder elsewhere (`generated/leak -> ../elsewhere`) is not read by
    `check` or `diff`: the file outside never shows in their output."""
    output = example_copy / "generated"
    elsewhere = example_copy / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.yaml").write_text("SECRET OUTSIDE\n")
    (output / "leak").symlink_to("../elsewhere")
    manifest_path = output / conventions.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["leak/x.yaml"] = "sha256:" + "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    assert "leak/x.yaml" not in emit.read_owned(output)
    for arguments in (["check"], ["check", "--no-cache"], ["diff"]):
        result = run_llmops(*arguments, cwd=example_copy, env={"LLMOPS_CACHE_DIR": str(tmp_path / "cache")},
                            timeout=120)
        assert "SECRET OUTSIDE" not in result.stdout + result.stderr, arguments
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b'{"files": {', b"[]", b"null", b'{"files": []}', b"\xff\xfe",
                                     b"[" * 200_000 + b"]" * 200_000, b'{"files": {"argocd/dev.yaml": 5}}', None])
def test_a_damaged_manifest_is_named_as_the_cause_once(example_copy: Path, content: bytes | None) -> None:
    """Without a readable manifest no file is known to be the compiler's, so a compile refuses to overwrite
    them; it says so in one diagnostic at the manifest, not one per file, and never crashes (a manifest nested
    past the JSON decoder's depth included). `check` and `diff` report instead of failing."""
    output = example_copy / "generated"
    if content is None:  # deleted
        (output / conventions.MANIFEST_FILE).unlink()
    else:
        (output / conventions.MANIFEST_FILE).write_bytes(content)
    before = _tree(output)
    with pytest.raises(CompileError) as error:
        api.compile_project(example_copy / "specs", output)
    [problem] = error.value.diagnostics
    assert (problem.code, problem.position.file) == ("LLM503", str(output / conventions.MANIFEST_FILE))
    assert problem.message.startswith("this manifest cannot be read (")
    assert "git checkout -- generated/.llmops-manifest.json" in problem.hint
    assert _tree(output) == before
    for arguments, code in ((["check"], 1), (["diff"], 3)):  # stale; `diff` exits 3 on changes
        result = run_llmops(*arguments, "--no-cache", cwd=example_copy, timeout=120)
        assert result.returncode == code and "internal error" not in result.stderr, (arguments, result.stderr)
        if arguments == ["check"]:  # the cause is named, not only the 130 files that look missing
            assert "generated/.llmops-manifest.json cannot be read (" in result.stderr


def test_removed_files_are_the_owned_ones_that_were_there(example_copy: Path) -> None:
    """A manifest may name paths that are not (or no longer) there, or folders: a compile lists as removed only
    the owned files it actually took away."""
    output = example_copy / "generated"
    manifest_path = output / conventions.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["files"].update({f"dev/gone-{index}.yaml": "sha256:0" for index in range(1000)})
    manifest["files"].update({"dev": "sha256:0", "dev/": "sha256:0", "./dev/x.yaml": "sha256:0"})
    (output / "dev" / "stale.yaml").write_text("owned: true\n")
    manifest["files"]["dev/stale.yaml"] = "sha256:0"
    manifest_path.write_text(json.dumps(manifest))
    result = api.compile_project(example_copy / "specs", output)
    assert result.removed == ["dev/stale.yaml"]
    assert not (output / "dev" / "stale.yaml").exists()


@pytest.mark.parametrize("entry", ["fifo", "socket", "link to a fifo"])
def test_an_output_path_that_is_not_a_folder_is_refused_before_anything_is_touched(example_copy: Path,
                                                                                   tmp_path: Path, entry: str) -> None:
    """`-o` naming a FIFO, a socket or a link to one (a device alike: `-o /dev/full` used to become a folder) is
    refused with LLM503: the entry stays as it was, nothing hangs, and no lock or staging file appears beside."""
    import socket

    place = tmp_path / "out"
    if entry == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(place))
    else:
        os.mkfifo(tmp_path / "fifo")
        if entry == "fifo":
            os.rename(tmp_path / "fifo", place)
        else:
            place.symlink_to(tmp_path / "fifo")
    before = {path.name: os.lstat(path).st_mode for path in tmp_path.iterdir()}
    result = run_llmops("compile", str(example_copy / "specs"), "-o", str(place), "--no-cache", timeout=120)
    assert result.returncode == 1, result.stderr
    assert "error[LLM503]: the output folder" in result.stderr and "exists and is a" in result.stderr
    assert {path.name: os.lstat(path).st_mode for path in tmp_path.iterdir()} == before


def test_a_folder_the_compile_empties_goes_and_a_user_s_empty_folder_stays(example_copy: Path, tmp_path: Path) -> None:
    """Removing the last owned file of a folder removes the folder (the tree is then the one a fresh compile
    makes, folders included); an empty folder the user made stays, and so does the folder above it."""
    output = example_copy / "generated"
    manifest_path = output / conventions.MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    for path in ("sub/owned.yaml", "dev/gone/owned.yaml", "keep/owned.yaml"):
        (output / path).parent.mkdir(parents=True, exist_ok=True)
        (output / path).write_text("owned: true\n")
        manifest["files"][path] = "sha256:0"
    (output / "keep" / "mine").mkdir()  # the user's, empty
    manifest_path.write_text(json.dumps(manifest))
    result = api.compile_project(example_copy / "specs", output)
    assert sorted(result.removed) == ["dev/gone/owned.yaml", "keep/owned.yaml", "sub/owned.yaml"]
    assert not (output / "sub").exists() and not (output / "dev/gone").exists()
    assert (output / "keep" / "mine").is_dir()
    (output / "keep" / "mine").rmdir()
    (output / "keep").rmdir()
    api.compile_project(example_copy / "specs", tmp_path / "fresh")
    folders = {path.relative_to(output).as_posix() for path in output.rglob("*") if path.is_dir()}
    assert folders == {path.relative_to(tmp_path / "fresh").as_posix()
                       for path in (tmp_path / "fresh").rglob("*") if path.is_dir()}


def test_a_compile_refuses_to_overwrite_a_file_it_does_not_own(tmp_path: Path, example_copy: Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "argocd").mkdir()
    (output / "argocd" / "project.yaml").write_text("# mine\n")
    with pytest.raises(CompileError) as error:
        api.compile_project(example_copy / "specs", output)
    assert error.value.diagnostics[0].code == "LLM503"
    assert (output / "argocd" / "project.yaml").read_text() == "# mine\n"


@pytest.mark.parametrize("kind", ["link to a folder", "file"])
def test_a_compile_never_writes_through_a_link_or_a_file_where_it_needs_a_folder(
        tmp_path: Path, example_copy: Path, kind: str) -> None:
    output = example_copy / "generated"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for path in list(output.joinpath("dev").rglob("*"))[::-1]:
        path.unlink() if path.is_file() else path.rmdir()
    output.joinpath("dev").rmdir()
    if kind == "file":
        output.joinpath("dev").write_text("in the way\n")
    else:
        output.joinpath("dev").symlink_to(elsewhere, target_is_directory=True)
    before = _tree(output)
    with pytest.raises(CompileError) as error:
        api.compile_project(example_copy / "specs", output)
    [problem] = error.value.diagnostics
    assert problem.code == "LLM503" and problem.position.file == str(output / "dev")
    assert ("a symbolic link" if kind != "file" else "not a folder") in problem.message
    assert list(elsewhere.iterdir()) == []
    assert _tree(output) == before
    assert not list(example_copy.glob(".generated.llmops-tmp-*"))


@pytest.mark.parametrize("place", ["specs", "specs/out", ".", "specs-link"])
def test_an_output_folder_overlapping_the_specs_folder_is_refused(example_copy: Path, place: str) -> None:
    (example_copy / "specs-link").symlink_to(example_copy / "specs", target_is_directory=True)
    before = _tree(example_copy)
    with pytest.raises(CompileError) as error:
        api.compile_project(example_copy / "specs", example_copy / place)
    [problem] = error.value.diagnostics
    assert problem.code == "LLM505" and "write the output beside the specs" in problem.hint
    assert _tree(example_copy) == before


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


# --- every kind of unowned entry, symlinked outputs, and the swap without an atomic exchange --------------

def _entries(folder: Path) -> dict[str, tuple[str, Any]]:
    """Every entry under ``folder`` with its type and what identifies it (bytes, link target, inode)."""
    found: dict[str, tuple[str, Any]] = {}
    for root, dirs, names in os.walk(folder):
        for name in [*dirs, *names]:
            path = Path(root, name)
            relative = path.relative_to(folder).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(mode):
                found[relative] = ("folder", stat.S_IMODE(mode))
            elif stat.S_ISFIFO(mode):
                found[relative] = ("fifo", os.lstat(path).st_ino)
            else:
                found[relative] = ("file", path.read_bytes())
    return found


def _unowned(output: Path) -> dict[str, tuple[str, Any]]:
    (output / "notes").mkdir()
    (output / "empty").mkdir()
    (output / "notes" / "README.md").write_text("hand-written\n")
    os.symlink("../argocd", output / "notes" / "argocd-link")  # a link to a folder
    os.symlink("nowhere", output / "dangling")
    os.mkfifo(output / "prod" / "pipe")
    (output / "locked").mkdir()
    (output / "locked" / "kept.txt").write_text("kept\n")
    os.chmod(output / "locked", 0o555)
    return {path: entry for path, entry in _entries(output).items()
            if path.split("/")[0] in ("notes", "empty", "dangling", "locked") or path == "prod/pipe"}


def _change_one_prompt(example: Path) -> None:
    prompt = example / "specs/prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))


def test_unowned_entries_of_every_type_survive_and_unchanged_files_are_not_rewritten(example_copy: Path) -> None:
    output = example_copy / "generated"
    unowned = _unowned(output)
    unchanged = output / "prod/rbac/llmops-sensor.role.yaml"
    inode = unchanged.stat().st_ino
    _change_one_prompt(example_copy)
    result = api.compile_project(example_copy / "specs", output)
    assert result.written and not result.unchanged
    after = _entries(output)
    assert {path: after.get(path) for path in unowned} == unowned  # FIFOs keep their inode: untouched
    assert unchanged.stat().st_ino == inode  # the same file, not a rewritten copy
    assert not list(example_copy.glob(".generated.llmops-*-*"))


def test_an_output_folder_that_is_a_symlink_is_written_through(example_copy: Path) -> None:
    real = example_copy / "real-output"
    (example_copy / "generated").rename(real)
    os.symlink("real-output", example_copy / "generated")
    _change_one_prompt(example_copy)
    api.compile_project(example_copy / "specs", example_copy / "generated")
    assert (example_copy / "generated").is_symlink() and os.readlink(example_copy / "generated") == "real-output"
    assert any("writes:" in path.read_text() for path in real.glob("prod/configmaps/prompt-answer-*"))
    assert api.check(example_copy / "specs", example_copy / "generated").ok


KILL_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from llmops_compiler import api, emit
emit._exchange = lambda first, second: False  # a file system without renameat2(RENAME_EXCHANGE)
renames = []
real_rename = os.rename
def rename(source, target):
    real_rename(source, target)
    renames.append(target)
    if sys.argv[3].isdigit() and len(renames) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename
real_rmtree = emit._writable_rmtree
def rmtree(path):
    if sys.argv[3] == "rmtree" and ".llmops-old-" in str(path):
        os.kill(os.getpid(), signal.SIGKILL)
    real_rmtree(path)
emit._writable_rmtree = rmtree
api.compile_project(Path(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.parametrize("kill_at", ["1", "2", "rmtree"], ids=["after-backup", "after-swap", "before-cleanup"])
def test_a_compile_killed_during_a_swap_without_exchange_loses_nothing(example_copy: Path, kill_at: str) -> None:
    """Without an atomic exchange the swap is two renames; killed after either, or before the backup is
    removed, the output holds the old or the new tree and every unowned entry, and the next compile finishes
    the job (it never deletes a backup that holds the only copy)."""
    output = example_copy / "generated"
    unowned = _unowned(output)
    before = _tree(output)
    _change_one_prompt(example_copy)
    process = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(example_copy / "specs"), str(output),
                              kill_at], capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr
    backups = list(example_copy.glob(".generated.llmops-old-*"))
    if kill_at == "1":  # killed between the renames: the output folder is gone, the backup holds it
        assert not os.path.lexists(output) and len(backups) == 1
    api.compile_project(example_copy / "specs", output)  # recovers, then compiles
    after = _entries(output)
    assert {path: after.get(path) for path in unowned} == unowned
    assert api.check(example_copy / "specs", output).ok
    assert _tree(output) != before
    assert not list(example_copy.glob(".generated.llmops-*-*"))


def test_a_failed_write_changes_nothing_and_leaves_nothing_behind(example_copy: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops_compiler import emit

    output = example_copy / "generated"
    unowned = _unowned(output)
    before = _entries(output)
    _change_one_prompt(example_copy)

    def disk_full(self: Path, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError):
        api.compile_project(example_copy / "specs", output)
    monkeypatch.undo()
    assert _entries(output) == before and all(before[path] == unowned[path] for path in unowned)
    assert not list(example_copy.glob(".generated.llmops-*-*"))
    emit.recover(output)  # nothing to recover
    assert _entries(output) == before
