"""What a change does to each cluster, like a terraform plan: per environment and resource, per field."""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from . import conventions

if TYPE_CHECKING:
    from .load import SpecInputs

Action = Literal["add", "change", "replace", "delete"]
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SYMBOLS = {"add": "+", "change": "~", "replace": "-/+", "delete": "-"}


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    action: Action
    environment: str
    kind: str
    name: str
    previous_name: str | None = None
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def title(self) -> str:
        if self.previous_name and self.previous_name != self.name:
            return f"{self.kind}/{self.previous_name} → {self.name}"
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Plan:
    environments: list[str]
    changes: list[ResourceChange]
    rollouts: list[str] = field(default_factory=list)
    """Rollout changes in words ("prod: support-llm canary 10% → 25%"), from the VirtualServices' state."""

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self, environment: str) -> dict[str, int]:
        counts = {"add": 0, "change": 0, "replace": 0, "delete": 0}
        for change in self.changes:
            if change.environment == environment:
                counts[change.action] += 1
        return counts

    def summary_line(self, environment: str) -> str:
        counts = self.counts(environment)
        replace = f", {counts['replace']} to replace" if counts["replace"] else ""
        return (f"{environment}: {counts['add']} to add, {counts['change']} to change{replace}, "
                f"{counts['delete']} to delete")


def _parse(content: bytes) -> Any:
    return yaml.load(content, Loader=_Loader)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def field_changes(before: Any, after: Any) -> list[FieldChange]:
    old, new = dict(_flatten(before)), dict(_flatten(after))
    return [
        FieldChange(path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    ]


def _resource_paths(files: Mapping[str, bytes]) -> set[str]:
    return {path for path in files
            if path != conventions.MANIFEST_FILE and not path.endswith("/" + conventions.KUSTOMIZATION_FILE)}


def _resource_files(files: Mapping[str, bytes], paths: set[str]) -> dict[tuple[str, str, str], Any]:
    """(environment, kind, name) → parsed object, for the generated resources at ``paths``."""
    found = {}
    for path in sorted(paths):
        body = _parse(files[path])
        if not isinstance(body, dict) or "kind" not in body:
            continue
        environment = path.split("/", 1)[0]
        found[(environment, str(body["kind"]), str(body["metadata"]["name"]))] = body
    return found


def _identity(body: Any) -> tuple[str, str, str] | None:
    """What a content-hashed resource stands for (component and spec), so that when its content changes and
    with it its name, the plan shows one replacement rather than an unrelated delete and add."""
    metadata = body.get("metadata", {})
    if conventions.ANNOTATION_CONTENT_HASH not in metadata.get("annotations", {}):
        return None
    labels = metadata.get("labels", {})
    return (
        labels.get(conventions.LABEL_COMPONENT, ""),
        labels.get(conventions.LABEL_SPEC_KIND, ""),
        labels.get(conventions.LABEL_SPEC_NAME, ""),
    )


def compare(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> Plan:
    """The plan from ``before`` to ``after`` (relative path → file bytes). Files are compared by their bytes
    first; only the ones that differ are parsed and compared field by field, so the work follows the change."""
    before_paths, after_paths = _resource_paths(before), _resource_paths(after)
    differing = {path for path in before_paths & after_paths if before[path] != after[path]}
    old = _resource_files(before, differing | (before_paths - after_paths))
    new = _resource_files(after, differing | (after_paths - before_paths))
    environments = sorted({path.split("/", 1)[0] for path in before_paths | after_paths})
    changes: list[ResourceChange] = []
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    for key in sorted(set(old) & set(new)):
        fields = field_changes(old[key], new[key])
        if fields:
            changes.append(ResourceChange("change", *key, fields=fields))
    removed_by_identity = {(key[0], key[1], _identity(old[key])): key for key in removed if _identity(old[key])}
    for key in added:
        match = removed_by_identity.pop((key[0], key[1], _identity(new[key])), None) if _identity(new[key]) else None
        if match is not None:
            removed.remove(match)
            changes.append(ResourceChange("replace", *key, previous_name=match[2],
                                          fields=field_changes(old[match], new[key])))
        else:
            changes.append(ResourceChange("add", *key))
    changes.extend(ResourceChange("delete", *key) for key in removed)
    order = {"delete": 0, "replace": 1, "change": 2, "add": 3}
    changes.sort(key=lambda c: (c.environment, c.kind, c.name, order[c.action]))
    return Plan(environments, changes, rollout_changes(old, new))


def _rollout(body: Any) -> Any:
    text = body.get("metadata", {}).get("annotations", {}).get(conventions.ANNOTATION_ROLLOUT)
    return json.loads(text) if isinstance(text, str) else None


def rollout_changes(old: Mapping[tuple[str, str, str], Any], new: Mapping[tuple[str, str, str], Any]) -> list[str]:
    """One line per environment and rollout whose state changed, as the promote step words its commits; a
    rollout that is new says where it stands, and a policy edit that moves a rollout in flight (another
    weight at its step, another strategy) says so too."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if key[1] != "VirtualService":
            continue
        before, after = _rollout(old.get(key, {})), _rollout(new.get(key, {}))
        if after is None or before == after:
            continue
        from .rollout import IN_FLIGHT, describe_change, describe_state, step_label  # only when a rollout changed
        from .specs.rollout import EnvironmentState

        policy = _policy_of(key[2], after)
        state = EnvironmentState.model_validate(after["state"])
        if before is None:
            lines.append(f"{describe_state(key[0], after['policy'], policy, state)} (new)")
            continue
        previous = EnvironmentState.model_validate(before["state"])
        line = describe_change(key[0], after["policy"], policy, previous, state)
        if line is None and state.status in IN_FLIGHT and state.candidate is not None:
            old_policy = _policy_of(key[2], before)
            was, now = (step_label(item, state.step) for item in (old_policy, policy))
            if old_policy.strategy != policy.strategy:
                was, now = f"{old_policy.strategy} {was}", f"{policy.strategy} {now}"
            else:
                was = f"{policy.strategy} {was}"
            if (old_policy.strategy, was) != (policy.strategy, f"{policy.strategy} {now}"):
                line = f"{key[0]}: {after['policy']} v{state.candidate} {was} → {now} (the policy changed)"
        if line:
            lines.append(line)
    return lines


def _policy_of(model: str, rollout: Mapping[str, Any]) -> Any:
    """The part of a RolloutPolicy a VirtualService's rollout annotation records (strategy and step weights)."""
    from .specs.rollout import RolloutPolicySpec

    strategy = rollout["strategy"]
    return RolloutPolicySpec.model_validate({
        "model": model, "strategy": strategy, "steps": [{"weight": weight} for weight in rollout["steps"]],
        **({"match": {"header": {"name": "x", "value": "x"}}} if strategy == "abTest" else {}),
        **({"mirrorPercent": 100} if strategy == "shadow" else {})})


# --- rendering -------------------------------------------------------------------------------------

SHOWN = 80  # longest value shown whole on a field line
CONTEXT = 24  # characters kept on each side of the part of a long value that changed
# Fields the compiler writes for its own bookkeeping: a change there alone says nothing about the cluster.
BOOKKEEPING_PATHS = (f"metadata.annotations.{conventions.ANNOTATION_SPEC_HASH}",)


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    if not isinstance(value, (dict, list)):  # a YAML dump of a lone scalar ends in a document marker
        return json.dumps(value)
    return yaml.dump(value, default_flow_style=True, width=4096).strip()


def _common_length(first: str, second: str) -> int:
    """How many leading characters two strings share."""
    length = 0
    for left, right in zip(first, second, strict=False):
        if left != right:
            break
        length += 1
    return length


def changed_parts(before: str, after: str) -> tuple[str, str]:
    """Two values as they are shown side by side: whole when short, otherwise the part that differs with some
    context and `…` for what is left out, so that two different values never look the same."""
    if len(before) <= SHOWN and len(after) <= SHOWN:
        return before, after
    prefix = _common_length(before, after)
    suffix = _common_length(before[prefix:][::-1], after[prefix:][::-1])
    start = max(prefix - CONTEXT, 0)

    def excerpt(text: str) -> str:
        end = len(text) - suffix
        stop = min(end + CONTEXT, len(text))
        middle = text[start:stop]
        if len(middle) > SHOWN * 2:  # a long change: its start and its end
            middle = middle[:SHOWN] + "…" + middle[-CONTEXT:]
        return ("…" if start else "") + middle + ("…" if stop < len(text) else "")

    return excerpt(before), excerpt(after)


def _field_lines(change: FieldChange) -> list[str]:
    before, after = change.before, change.after
    if isinstance(before, str) and isinstance(after, str) and ("\n" in before or "\n" in after):
        diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
        return [f"{change.path}:"] + ["    " + line for line in list(diff)[2:]]
    shown_before, shown_after = changed_parts(_text(before), _text(after))
    return [f"{change.path}: {shown_before} → {shown_after}"]


def _is_bookkeeping(change: FieldChange, hashes: set[str]) -> bool:
    """A spec-hash annotation, or a value that only swaps the old spec hash for the new one (the hash the
    register step records)."""
    return change.path in BOOKKEEPING_PATHS or (
        isinstance(change.before, str) and isinstance(change.after, str) and change.before in hashes
        and change.after in hashes)


def _change_lines(change: ResourceChange) -> list[str]:
    """The field lines of a change, with bookkeeping folded into one line."""
    spec_hash = next((field for field in change.fields if field.path in BOOKKEEPING_PATHS), None)
    hashes = {str(spec_hash.before), str(spec_hash.after)} if spec_hash else set()
    real = [field for field in change.fields if not _is_bookkeeping(field, hashes)]
    lines = [line for field in real for line in _field_lines(field)]
    folded = len(change.fields) - len(real)
    if folded:
        hash_change = f": spec hash {_text(spec_hash.before)} → {_text(spec_hash.after)}" if spec_hash else ""
        lines.append(f"(+ {folded} bookkeeping field(s){hash_change})")
    return lines


def _title(change: ResourceChange) -> str:
    bookkeeping_only = change.action == "change" and all(
        line.startswith("(+ ") for line in _change_lines(change))
    return f"{change.title} ({'spec hash only' if bookkeeping_only else change.action})"


def render_text(plan: Plan) -> str:
    if plan.empty:
        return "No changes: the clusters already match the specs."
    lines = [plan.summary_line(environment) for environment in plan.environments]
    if plan.rollouts:
        lines += ["", "Rollouts:", *(f"  {line}" for line in plan.rollouts)]
    for change in plan.changes:
        lines.append("")
        lines.append(f"{SYMBOLS[change.action]} {change.environment}: {_title(change)}")
        if not _title(change).endswith("(spec hash only)"):
            lines.extend("    " + line for line in _change_lines(change))
    return "\n".join(lines)


def render_markdown(plan: Plan) -> str:
    if plan.empty:
        return "### llmops plan\n\nNo changes: the clusters already match the specs.\n"
    lines = ["### llmops plan", ""]
    lines += [f"- **{plan.summary_line(environment)}**" for environment in plan.environments]
    if plan.rollouts:
        lines += ["", "**Rollouts**", "", *(f"- {line}" for line in plan.rollouts)]
    for environment in plan.environments:
        changes = [change for change in plan.changes if change.environment == environment]
        if not changes:
            continue
        lines += ["", f"<details><summary><b>{environment}</b>: {len(changes)} resource(s)</summary>", "", "```diff"]
        for change in changes:
            lines.append(f"{SYMBOLS[change.action]} {_title(change)}")
            if not _title(change).endswith("(spec hash only)"):
                lines.extend("    " + line for line in _change_lines(change))
        lines += ["```", "", "</details>"]
    return "\n".join(lines) + "\n"


# --- specs at a git revision -----------------------------------------------------------------------

class GitError(Exception):
    pass


def _git_runner(directory: Path) -> tuple[Path, Callable[..., bytes]]:
    """The top of the git work tree holding ``directory``, and a function that runs git there."""
    def git(*args: str, cwd: Path = directory) -> bytes:
        result = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=False)
        if result.returncode != 0:
            raise GitError(result.stderr.decode(errors="replace").strip() or f"git {' '.join(args)} failed")
        return result.stdout

    return Path(git("rev-parse", "--show-toplevel").decode().strip()), git


def _specs_archive(specs_dir: Path, revision: str) -> tuple[Path, Callable[..., bytes], str, bytes] | None:
    """The repository top, its git runner, the specs folder's path in it, and a tar of the folder at
    ``revision``; None when the folder did not exist there."""
    specs_dir = specs_dir.resolve()
    top, git = _git_runner(specs_dir)
    relative = specs_dir.relative_to(top.resolve()).as_posix()
    try:
        git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    except GitError:
        shallow = subprocess.run(["git", "-C", str(top), "rev-parse", "--is-shallow-repository"],
                                 capture_output=True, text=True, check=False).stdout.strip() == "true"
        raise GitError(f"`{revision}` is not a commit of this repository"
                       + ("; this clone is shallow, so the base's history may be missing: fetch it (`git fetch "
                          "--unshallow`, or `fetch-depth: 0` in actions/checkout)" if shallow else
                          "; check the name (a branch, a tag, a commit), and fetch it if it is remote")) from None
    if relative == ".":  # the specs folder is the top of the repository: every commit has it
        return top, git, relative, git("archive", "--format=tar", revision, cwd=top)
    listing = git("ls-tree", "-d", "--name-only", revision, "--", relative, cwd=top).decode().splitlines()
    if relative not in listing:
        return None
    return top, git, relative, git("archive", "--format=tar", revision, "--", relative, cwd=top)


def specs_at_revision(specs_dir: Path, revision: str, destination: Path) -> Path | None:
    """Extract ``specs_dir`` as it was at ``revision`` into ``destination``; None when it did not exist."""
    from .load import specs_folder_name

    found = _specs_archive(specs_dir, revision)
    if found is None:
        return None
    _, _, relative, archive = found
    target = destination / specs_folder_name(specs_dir)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar, tempfile.TemporaryDirectory() as unpack:
        tree = Path(unpack, "tree")
        tar.extractall(tree, filter="data")
        (tree / relative).rename(target)
    return target


def spec_inputs_at_revision(specs_dir: Path, revision: str) -> SpecInputs | Literal["extract"] | None:
    """The spec files of ``specs_dir`` as committed at ``revision``, read from git without writing them out,
    as :func:`.load.read_spec_inputs` would read them from a checkout: ``.yaml``/``.yml`` files outside folders
    whose names start with ``.``, in the order of their paths. None when the folder did not exist there;
    ``"extract"`` when it holds what only a checkout can answer for (a symbolic link, a file over the size
    limit): then use :func:`specs_at_revision`."""
    from .load import MAX_FILE_BYTES, SPEC_SUFFIXES, SpecInput, SpecInputs, specs_folder_name

    found = _specs_archive(specs_dir, revision)
    if found is None:
        return None
    _, _, relative, archive = found
    name = specs_folder_name(specs_dir)
    prefix = "" if relative == "." else relative + "/"
    files: list[tuple[str, bytes]] = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            path = member.name.rstrip("/")
            if not path.startswith(prefix):
                continue
            inside = path[len(prefix):]
            if member.isdir() or not inside:
                continue
            parts = inside.split("/")
            if any(part.startswith(".") for part in parts[:-1]) or not parts[-1].endswith(SPEC_SUFFIXES):
                continue
            if not member.isfile() or member.size > MAX_FILE_BYTES:
                return "extract"
            handle = tar.extractfile(member)
            if handle is None:
                return "extract"
            files.append((inside, handle.read()))
    files.sort(key=lambda item: item[0])
    return SpecInputs(name, [SpecInput(f"{name}/{inside}", content) for inside, content in files])


def _blob_id(content: bytes, length: int) -> str:
    """The git object id of a blob with these bytes (SHA-1, or SHA-256 in repositories that use it)."""
    header = b"blob %d\0" % len(content)
    return (hashlib.sha256 if length == 64 else hashlib.sha1)(header + content).hexdigest()


def committed_output(specs_dir: Path, output_dir: Path, revision: str, specs_digest: str, compiler_version: str,
                     known: Mapping[str, bytes] | None = None) -> dict[str, bytes] | None:
    """The output folder's owned files as committed at ``revision`` (relative path → bytes), when they are what
    this compiler version makes of the specs at that revision: its manifest records ``compiler_version`` and
    ``specs_digest`` (:func:`.load.specs_digest` of those specs), and every file it lists is committed with the
    sha256 it records. None otherwise (also when the folder is not in the repository at ``revision``).

    ``known`` (path → bytes, say the files of a compile of the working tree) saves reading from git every
    committed file whose blob has these very bytes, so that the work follows the change."""
    from .emit import manifest_inputs

    top, git = _git_runner(specs_dir.resolve())
    relative = os.path.relpath(os.path.abspath(output_dir), top.resolve())
    if relative.startswith("..") or os.path.isabs(relative) or relative == ".":
        return None
    relative = Path(relative).as_posix()
    try:
        manifest = git("show", f"{revision}:{relative}/{conventions.MANIFEST_FILE}", cwd=top)
    except GitError:
        return None
    if manifest_inputs(manifest) != (compiler_version, specs_digest):
        return None
    try:
        listed = json.loads(manifest).get("files", {})
        tree = git("ls-tree", "-r", "-z", "--full-tree", revision, "--", relative, cwd=top)
    except (GitError, ValueError, AttributeError):
        return None
    if not isinstance(listed, dict):
        return None
    blobs: dict[str, str] = {}
    for entry in tree.split(b"\0"):
        if not entry:
            continue
        info, _, path = entry.partition(b"\t")
        mode, kind, object_id = info.decode().split(" ")
        if kind == "blob" and mode in ("100644", "100755"):
            blobs[path.decode("utf-8", "surrogateescape").removeprefix(relative + "/")] = object_id
    files: dict[str, bytes] = {conventions.MANIFEST_FILE: manifest}
    missing = []
    for path in listed:
        if path not in blobs:
            return None
        content = (known or {}).get(path)
        if content is not None and _blob_id(content, len(blobs[path])) == blobs[path]:
            files[path] = content
        else:
            missing.append(path)
    if missing:
        request = "".join(f"{blobs[path]}\n" for path in missing).encode()
        result = subprocess.run(["git", "-C", str(top), "cat-file", "--batch"], input=request, capture_output=True,
                                check=False)
        if result.returncode != 0:
            return None
        stream, offset = result.stdout, 0
        for path in missing:
            end = stream.index(b"\n", offset)
            header = stream[offset:end].split(b" ")
            if len(header) != 3 or header[1] != b"blob":
                return None
            size = int(header[2])
            files[path] = stream[end + 1:end + 1 + size]
            offset = end + 1 + size + 1
    for path, digest in listed.items():
        if digest != "sha256:" + hashlib.sha256(files[path]).hexdigest():
            return None
    return dict(sorted(files.items()))
