"""``llmops init``: a new spec project that compiles as it is, for a team to edit."""

from __future__ import annotations

import os
from pathlib import Path

from .schema import json_schema_text
from .specs.common import DNS_LABEL

PLACEHOLDER_DIGEST = "sha256:" + "0" * 64

FILES = {
    "project.yaml": """\
# yaml-language-server: $schema=.schema/llmops.schema.json
# The one Project: where the output goes and which platform services exist. Replace every `example` value.
apiVersion: llmops.dev/v1alpha1
kind: Project
metadata:
  name: {name}
spec:
  repo:
    url: https://github.com/example/{name}-gitops.git   # the repository ArgoCD syncs
    branch: main
    path: generated
  environments:
    - name: dev
      namespace: {name}-dev
      autoSync: true
    - name: prod
      namespace: {name}-prod
      autoSync: false          # a person syncs prod after review
  mlflow:
    trackingUri: http://mlflow.mlops.svc:5000
  runtime:
    # the image with `llmops-compiler[runtime]` installed, pinned by digest (replace the zeros)
    image: ghcr.io/example/llmops-runtime@{digest}
  prometheus:
    url: http://prometheus-operated.monitoring.svc:9090
    pushgatewayUrl: http://prometheus-pushgateway.monitoring.svc:9091
""",
    "models/assistant.yaml": """\
# yaml-language-server: $schema=../.schema/llmops.schema.json
apiVersion: llmops.dev/v1alpha1
kind: Model
metadata:
  name: assistant
spec:
  baseModel: s3://example-models/base/my-base-model
  registeredModel: assistant
  serving:
    service: {{name: assistant, port: 8080}}
""",
    "prompts/answer.yaml": """\
# yaml-language-server: $schema=../.schema/llmops.schema.json
apiVersion: llmops.dev/v1alpha1
kind: Prompt
metadata:
  name: answer
spec:
  model: assistant
  version: 0.1.0
  template: |
    Answer the question in one paragraph: {{{{ question }}}}
  inputs:
    - name: question
""",
    "monitoring/assistant.yaml": """\
# yaml-language-server: $schema=../.schema/llmops.schema.json
apiVersion: llmops.dev/v1alpha1
kind: Monitor
metadata:
  name: assistant
spec:
  model: assistant
  slos:
    - name: availability
      type: availability
      objective: 0.999
""",
}


# What `llmops compile` leaves beside the output folder and git should not track: the lock that serialises
# concurrent compiles (kept, since deleting a lock file races with its next holder) and the staging folder of
# a compile that was killed (recovered or removed by the next one).
GITIGNORE = [".*.llmops-lock", ".*.llmops-tmp-*/", ".*.llmops-old-*/"]


def ignore_compiler_files(repository: Path) -> bool:
    """Add the :data:`GITIGNORE` patterns missing from ``repository/.gitignore``; True when it changed."""
    path = repository / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    missing = [pattern for pattern in GITIGNORE if pattern not in text.splitlines()]
    if not missing:
        return False
    prefix = "" if not text or text.endswith("\n") else "\n"
    path.write_text(text + prefix + "# llmops compile: lock and interrupted staging folders\n" +
                    "".join(f"{pattern}\n" for pattern in missing), encoding="utf-8")
    return True


class ScaffoldError(Exception):
    """The project cannot be created here (a bad name, or spec files already there)."""


def scaffold(specs_dir: Path, name: str) -> list[Path]:
    """Write a minimal project (Project, Model, Prompt, Monitor and the editor schema) into ``specs_dir``, and
    the compiler's working files into the ``.gitignore`` beside it (see :func:`ignore_compiler_files`).

    Raises :class:`ScaffoldError` when ``name`` is not a DNS label or ``specs_dir`` already holds files."""
    if len(name) > 50 or not DNS_LABEL.fullmatch(name):
        raise ScaffoldError(f"`{name}` is not a project name: use lowercase letters, digits and '-' (at most 50)")
    if os.path.lexists(specs_dir) and not specs_dir.is_dir():
        raise ScaffoldError(f"{specs_dir} exists and is not a folder (a file, or a link to nothing): "
                            "choose a new folder")
    if specs_dir.exists() and any(specs_dir.iterdir()):
        raise ScaffoldError(f"{specs_dir} is not empty: choose a new folder")
    written = []
    for relative, template in FILES.items():
        path = specs_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, digest=PLACEHOLDER_DIGEST))
        written.append(path)
    schema = specs_dir / ".schema" / "llmops.schema.json"
    schema.parent.mkdir(parents=True, exist_ok=True)
    schema.write_text(json_schema_text())
    written.append(schema)
    if ignore_compiler_files(specs_dir.resolve().parent):
        written.append(specs_dir.parent / ".gitignore")
    return written
