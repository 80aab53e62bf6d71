"""Register compiled prompts in the MLflow prompt registry and point an environment alias at them.

``python -m llmops_compiler.runtime.register_prompt (--prompts-dir DIR | --prompt-file F ...)
--alias ENV --git-commit SHA --mlflow-tracking-uri URI``

Each prompt file is YAML (or JSON) with the keys ``name``, ``version``, ``template`` (a string, or a list
of chat messages), ``inputs``, ``model`` and ``contentHash``, as rendered by the compiler into the prompt
ConfigMaps. ``--prompts-dir`` reads every ``*.yaml`` / ``*.yml`` / ``*.json`` file of a directory and skips
hidden entries (a mounted ConfigMap also contains ``..data`` and timestamped ``..2024_...`` entries).

For each prompt, when the latest registered version carries the same ``llmops.content_hash`` tag nothing
new is registered; otherwise ``mlflow.genai.register_prompt`` creates a new version with the template text
exactly as written (Jinja2 ``{{ var }}`` placeholders are also MLflow's double-brace format) and the tags
``llmops.content_hash``, ``llmops.spec_version``, ``llmops.git_commit``, ``llmops.inputs`` and
``llmops.model``. Then ``mlflow.genai.set_prompt_alias`` points ``--alias`` at that version.
Without ``contentHash`` in the file the hash is the sha256 of the template (canonical JSON for chat
templates), first 16 hex digits.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_compiler.runtime._common import (
    ArgParser,
    UsageError,
    mlflow_client,
    require_dir,
    require_file,
    run_step,
)

STEP = "register_prompt"
TAG_CONTENT_HASH = "llmops.content_hash"
TAG_SPEC_VERSION = "llmops.spec_version"
TAG_GIT_COMMIT = "llmops.git_commit"
TAG_INPUTS = "llmops.inputs"
TAG_MODEL = "llmops.model"
PROMPT_SUFFIXES = (".yaml", ".yml", ".json")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


@dataclass
class PromptSpec:
    name: str
    template: str | list[dict[str, Any]]
    content_hash: str
    version: str = ""
    inputs: list[str] = field(default_factory=list)
    model: str = ""
    source: str = ""


@dataclass
class PromptResult:
    name: str
    version: int
    created: bool
    alias: str


def content_hash_of(template: str | list[dict[str, Any]]) -> str:
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_prompt_file(path: str | Path) -> PromptSpec:
    """Parse and validate one prompt file."""
    import yaml

    p = require_file(path, "prompt file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"{p}: invalid YAML{where}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{p}: expected a mapping with name, version, template, inputs, model, contentHash")
    name = str(data.get("name") or p.stem)
    if not _NAME.match(name):
        raise UsageError(f"{p}: prompt name '{name}' may only contain letters, digits, '.', '_' and '-'")
    template = data.get("template")
    if isinstance(template, list):
        if not all(isinstance(m, dict) and "role" in m and "content" in m for m in template):
            raise UsageError(f"{p}: a chat template must be a list of {{role, content}} messages")
    elif not isinstance(template, str) or not template.strip():
        raise UsageError(f"{p}: 'template' must be a non-empty string or a list of chat messages")
    inputs = data.get("inputs") or []
    if isinstance(inputs, dict):  # {var: description} form
        inputs = list(inputs)
    if not isinstance(inputs, list):
        raise UsageError(f"{p}: 'inputs' must be a list")
    model = data.get("model") or ""
    model_text = model if isinstance(model, str) else json.dumps(model, sort_keys=True)
    chash = data.get("contentHash") or content_hash_of(template)
    return PromptSpec(
        name=name,
        template=template,
        content_hash=str(chash),
        version=str(data.get("version") or ""),
        inputs=[str(i.get("name", i)) if isinstance(i, dict) else str(i) for i in inputs],
        model=model_text,
        source=str(p),
    )


def collect_prompt_files(prompts_dir: str | None, prompt_files: list[str]) -> list[Path]:
    files: list[Path] = []
    if prompts_dir:
        d = require_dir(prompts_dir, "--prompts-dir")
        files += sorted(
            f for f in d.iterdir() if not f.name.startswith(".") and f.suffix.lower() in PROMPT_SUFFIXES and f.is_file()
        )
    files += [require_file(f, "--prompt-file") for f in prompt_files]
    if not files:
        raise UsageError("no prompt files given (--prompts-dir has no *.yaml/*.yml/*.json, no --prompt-file)")
    return files


def _latest_version(client: Any, name: str) -> Any | None:
    if client.get_prompt(name) is None:
        return None
    latest = None
    token = None
    while True:
        page = client.search_prompt_versions(name, page_token=token)
        for pv in page:
            if latest is None or int(pv.version) > int(latest.version):
                latest = pv
        token = page.token
        if not token:
            return latest


def register_prompts(files: list[Path], alias: str, git_commit: str, tracking_uri: str) -> list[PromptResult]:
    """Register each prompt file (idempotently by content hash) and set ``alias``; one result per file."""
    if _RESERVED_ALIAS.match(alias) or not re.match(r"^[A-Za-z0-9_-]+$", alias):
        raise UsageError(f"invalid alias '{alias}' (reserved or not [A-Za-z0-9_-]+)")
    specs = [load_prompt_file(f) for f in files]
    seen: dict[str, str] = {}
    for s in specs:
        if s.name in seen:
            raise UsageError(f"prompt '{s.name}' defined twice: {seen[s.name]} and {s.source}")
        seen[s.name] = s.source

    client = mlflow_client(tracking_uri)
    import mlflow.genai

    results: list[PromptResult] = []
    for s in specs:
        latest = _latest_version(client, s.name)
        if latest is not None and (latest.tags or {}).get(TAG_CONTENT_HASH) == s.content_hash:
            version, created = int(latest.version), False
        else:
            tags = {
                TAG_CONTENT_HASH: s.content_hash,
                TAG_SPEC_VERSION: s.version,
                TAG_GIT_COMMIT: git_commit,
                TAG_INPUTS: ",".join(s.inputs),
                TAG_MODEL: s.model,
            }
            pv = mlflow.genai.register_prompt(
                name=s.name,
                template=s.template,
                commit_message=f"llmops: {s.name} {s.version} ({s.content_hash}) at {git_commit}".strip(),
                tags={k: v for k, v in tags.items() if v},
            )
            version, created = int(pv.version), True
        mlflow.genai.set_prompt_alias(s.name, alias=alias, version=version)
        results.append(PromptResult(name=s.name, version=version, created=created, alias=alias))
    return results


def build_parser() -> ArgParser:
    p = ArgParser(prog=f"python -m llmops_compiler.runtime.{STEP}", description=__doc__.splitlines()[0])
    p.add_argument("--prompts-dir", help="directory of prompt files (a mounted prompt ConfigMap)")
    p.add_argument("--prompt-file", action="append", default=[], help="a prompt file (repeatable)")
    p.add_argument("--alias", required=True, help="environment alias to point at the registered versions")
    p.add_argument("--git-commit", required=True)
    p.add_argument("--mlflow-tracking-uri", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        a = build_parser().parse_args(argv)
        files = collect_prompt_files(a.prompts_dir, a.prompt_file)
        for r in register_prompts(files, a.alias, a.git_commit, a.mlflow_tracking_uri):
            verb = "registered" if r.created else "unchanged"
            print(f"{STEP}: {r.name} version {r.version} ({verb}), alias {r.alias}")
        return 0

    return run_step(STEP, body)


if __name__ == "__main__":
    raise SystemExit(main())
