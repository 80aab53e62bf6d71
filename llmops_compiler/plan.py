"""What a change does to each cluster, like a terraform plan: per environment and resource, per field."""

from __future__ import annotations

import difflib
import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from . import conventions

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


def _resource_files(files: Mapping[str, bytes]) -> dict[tuple[str, str, str], Any]:
    """(environment, kind, name) → parsed object, for every generated resource (not kustomizations)."""
    found = {}
    for path, content in files.items():
        if path == conventions.MANIFEST_FILE or path.endswith("/" + conventions.KUSTOMIZATION_FILE):
            continue
        body = _parse(content)
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
    old, new = _resource_files(before), _resource_files(after)
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
    environments = sorted({key[0] for key in old} | {key[0] for key in new})
    order = {"delete": 0, "replace": 1, "change": 2, "add": 3}
    changes.sort(key=lambda c: (c.environment, c.kind, c.name, order[c.action]))
    return Plan(environments, changes)


# --- rendering -------------------------------------------------------------------------------------

def _short(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    return yaml.dump(value, default_flow_style=True, width=4096).strip()


def _field_lines(change: FieldChange) -> list[str]:
    before, after = change.before, change.after
    if isinstance(before, str) and isinstance(after, str) and ("\n" in before or "\n" in after):
        diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
        return [f"{change.path}:"] + ["    " + line for line in list(diff)[2:]]
    return [f"{change.path}: {_short(before)} → {_short(after)}"]


def render_text(plan: Plan) -> str:
    if plan.empty:
        return "No changes: the clusters already match the specs."
    lines = [plan.summary_line(environment) for environment in plan.environments]
    for change in plan.changes:
        lines.append("")
        lines.append(f"{SYMBOLS[change.action]} {change.environment}: {change.title} ({change.action})")
        for field_change in change.fields:
            lines.extend("    " + line for line in _field_lines(field_change))
    return "\n".join(lines)


def render_markdown(plan: Plan) -> str:
    if plan.empty:
        return "### llmops plan\n\nNo changes: the clusters already match the specs.\n"
    lines = ["### llmops plan", ""]
    lines += [f"- **{plan.summary_line(environment)}**" for environment in plan.environments]
    for environment in plan.environments:
        changes = [change for change in plan.changes if change.environment == environment]
        if not changes:
            continue
        lines += ["", f"<details><summary><b>{environment}</b>: {len(changes)} resource(s)</summary>", "", "```diff"]
        for change in changes:
            lines.append(f"{SYMBOLS[change.action]} {change.title} ({change.action})")
            lines.extend("    " + line for field_change in change.fields for line in _field_lines(field_change))
        lines += ["```", "", "</details>"]
    return "\n".join(lines) + "\n"


# --- specs at a git revision -----------------------------------------------------------------------

class GitError(Exception):
    pass


def specs_at_revision(specs_dir: Path, revision: str, destination: Path) -> Path | None:
    """Extract ``specs_dir`` as it was at ``revision`` into ``destination``; None when it did not exist."""
    specs_dir = specs_dir.resolve()

    def git(*args: str, cwd: Path = specs_dir) -> bytes:
        result = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=False)
        if result.returncode != 0:
            raise GitError(result.stderr.decode(errors="replace").strip() or f"git {' '.join(args)} failed")
        return result.stdout

    top = Path(git("rev-parse", "--show-toplevel").decode().strip())
    relative = specs_dir.relative_to(top.resolve()).as_posix()
    git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    listing = git("ls-tree", "-d", "--name-only", revision, "--", relative, cwd=top).decode().splitlines()
    target = destination / specs_dir.name
    if relative not in listing:
        return None
    archive = git("archive", "--format=tar", revision, "--", relative, cwd=top)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar, tempfile.TemporaryDirectory() as unpack:
        tar.extractall(unpack, filter="data")
        Path(unpack, relative).rename(target)
    return target
