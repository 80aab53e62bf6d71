"""A problem inside a prompt template is reported on its own line of the file, not at the `template:` key."""

from __future__ import annotations

import shutil
from pathlib import Path

from project_paths import EXAMPLE_SPECS

from llmops_compiler import api

PROMPT = """\
apiVersion: llmops.dev/v1alpha1
kind: Prompt
metadata: {name: answer}
spec:
  model: support-llm
  version: 1.0.0
  system: |

      Be brief, {{ persona }}.
  template: |
    Question: {{ question }}
    Tier: {{ tier }}
  inputs:
    - name: question
"""


def test_undeclared_variables_point_at_the_line_that_reads_them(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE_SPECS, tmp_path / "specs")
    (tmp_path / "specs/chains/support-answer.yaml").unlink()  # it consumes the example's `answer` prompt
    (tmp_path / "specs/prompts/answer.yaml").write_text(PROMPT)
    found = {(str(d.position), d.message) for d in api.validate(tmp_path / "specs") if d.code == "LLM221"}
    assert found == {
        # the system block starts with a blank line; its text is indented more than the key
        ("specs/prompts/answer.yaml:9:7", "system uses variable `persona`, which is not a declared input"),
        ("specs/prompts/answer.yaml:12:5", "template uses variable `tier`, which is not a declared input"),
    }
