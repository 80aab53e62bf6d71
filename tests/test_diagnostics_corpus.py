"""The broken-spec corpus (tests/fixtures/broken/): every case fails `llmops validate` and `llmops compile` with
exactly the diagnostics of its expected.txt, at file:line:col, in all three formats, and never with a traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from llmops_compiler import api
from llmops_compiler.specs import KINDS

Cli = Callable[..., Result]

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "broken"
CASES = sorted(folder.name for folder in CORPUS.iterdir() if (folder / "expected.txt").is_file())
UPDATE = os.environ.get("LLMOPS_UPDATE_EXPECTED") == "1"

# Findings about the specs folder as a whole carry no line.
FOLDER_LEVEL = {"no-project"}
# Diagnostic codes a specs folder cannot trigger through `validate`: emit and `check` findings, tested there.
NOT_FROM_SPECS = {"LLM009", "LLM501", "LLM502", "LLM503", "LLM504", "LLM505", "LLM510", "LLM600"}

FINDING = re.compile(
    r"(?P<file>specs/[^:]+\.ya?ml):(?P<line>[1-9]\d*):(?P<column>[1-9]\d*): "
    r"error\[(?P<code>LLM\d{3})\]: (?P<message>.+)"
)
FOLDER_FINDING = re.compile(r"(?P<file>specs): error\[(?P<code>LLM\d{3})\]: (?P<message>.+)")
SUMMARY = re.compile(r"(\d+) error\(s\), 0 warning\(s\)")


def _oversize_spec(path: Path) -> None:
    """A file just over the loader's 1 MiB bound: too big to commit, trivial to write."""
    line = "# padding " + "x" * 90 + "\n"
    path.write_text(line * (1024 * 1024 // len(line) + 1))


GENERATED: dict[str, dict[str, Callable[[Path], None]]] = {
    "file-over-size-limit": {"specs/prompts/huge.yaml": _oversize_spec},
}


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A writable copy of one case, so that `compile` can be shown to leave no output behind."""
    copy = Path(shutil.copytree(CORPUS / request.param, tmp_path / request.param))
    for relative, write in GENERATED.get(request.param, {}).items():
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        write(copy / relative)
    return copy


def expected_text(case: Path) -> str:
    return (CORPUS / case.name / "expected.txt").read_text()


def findings(text: str) -> list[re.Match[str]]:
    """The diagnostic lines of human output (hints and the summary left out), each parsed."""
    parsed = []
    for line in text.splitlines():
        if line.startswith("  hint: ") or SUMMARY.fullmatch(line):
            continue
        match = FINDING.fullmatch(line) or FOLDER_FINDING.fullmatch(line)
        assert match, f"not a diagnostic line: {line!r}"
        parsed.append(match)
    return parsed


def split_summary(stderr: str) -> tuple[str, int]:
    *body, summary = stderr.splitlines()
    count = SUMMARY.fullmatch(summary)
    assert count, f"last line is not the summary: {summary!r}"
    return "".join(line + "\n" for line in body), int(count.group(1))


# --- the corpus, case by case --------------------------------------------------------------------------


def test_validate_prints_exactly_the_expected_diagnostics(cli: Cli, case: Path) -> None:
    result = cli("validate", cwd=case)
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    body, count = split_summary(result.stderr)
    if UPDATE:
        (CORPUS / case.name / "expected.txt").write_text(body)
    assert body == expected_text(case)
    parsed = findings(body)
    assert count == len(parsed)
    for finding in parsed:
        if case.name in FOLDER_LEVEL:
            continue
        assert "line" in finding.groupdict(), f"{case.name}: no file:line:col in {finding.group(0)!r}"
        lines = (case / finding["file"]).read_bytes().count(b"\n") + 1
        assert int(finding["line"]) <= lines, f"{finding.group(0)!r} points past the end of its file"


def test_compile_fails_the_same_way_and_writes_nothing(cli: Cli, case: Path) -> None:
    result = cli("compile", "specs", "-o", "generated", cwd=case)
    assert "Traceback" not in result.output
    assert result.exit_code == 1
    assert split_summary(result.stderr)[0] == expected_text(case)
    assert not (case / "generated").exists()


def test_json_and_github_formats_carry_the_same_positions(cli: Cli, case: Path) -> None:
    expected = [
        (f["file"], int(f.groupdict().get("line") or 0), int(f.groupdict().get("column") or 0), f["code"])
        for f in findings(expected_text(case))
    ]
    as_json = cli("validate", "--format", "json", cwd=case)
    assert as_json.exit_code == 1
    rows = json.loads(as_json.stdout)
    assert [(row["file"], row["line"], row["column"], row["code"]) for row in rows] == expected
    assert all(row["severity"] == "error" and row["message"] for row in rows)

    github = cli("validate", "--format", "github", cwd=case)
    assert github.exit_code == 1
    annotations = github.stdout.splitlines()
    assert len(annotations) == len(expected)
    for annotation, (file, line, column, code) in zip(annotations, expected, strict=True):
        where = f"file={file},line={line},col={column}" if line else f"file={file}"
        assert annotation.startswith(f"::error {where},title={code}::"), annotation


# --- the corpus as a whole -------------------------------------------------------------------------------


def test_every_diagnostic_code_has_a_case() -> None:
    source = "".join(path.read_text() for path in (ROOT / "llmops_compiler").rglob("*.py"))
    codes = set(re.findall(r'"(LLM\d{3})"', source)) - NOT_FROM_SPECS
    covered = {f["code"] for case in CASES for f in findings((CORPUS / case / "expected.txt").read_text())}
    assert sorted(codes - covered) == [], "add a case under tests/fixtures/broken/ for these codes"


def test_every_kind_has_a_broken_spec() -> None:
    broken_kinds = set()
    for path in CORPUS.rglob("*.yaml"):
        text = path.read_text(errors="replace")
        if text.startswith("# Broken on purpose:"):
            broken_kinds.update(re.findall(r"^kind: (\w+)$", text, flags=re.MULTILINE))
    assert broken_kinds >= set(KINDS)


def test_each_case_says_what_is_broken() -> None:
    for case in CASES:
        specs = CORPUS / case / "specs"
        headers = [path for path in specs.rglob("*.yaml") if path.read_bytes().startswith(b"# Broken on purpose:")]
        assert headers or case in GENERATED, f"{case}: start the broken file with `# Broken on purpose: ...`"


def test_independent_mistakes_in_different_files_are_reported_together(cli: Cli) -> None:
    result = cli("validate", cwd=CORPUS / "three-errors-in-three-files")
    reported = {(f["file"], f["code"]) for f in findings(result.stderr)}
    assert reported == {
        ("specs/models/support-llm.yaml", "LLM106"),
        ("specs/prompts/answer.yaml", "LLM221"),
        ("specs/rollouts/support-llm.state.yaml", "LLM319"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "three-errors-in-three-files",
        "yaml-billion-laughs",
        "prompt-sandbox-escape-mro",
        "yaml-not-utf8",
    ],
)
def test_the_installed_command_line_prints_the_same(name: str, tmp_path: Path) -> None:
    copy = shutil.copytree(CORPUS / name, tmp_path / name)
    environment = {**os.environ, "NO_COLOR": "1"}
    environment.pop("LLMOPS_DEBUG", None)
    completed = subprocess.run(
        [sys.executable, "-m", "llmops_compiler.cli", "validate", "specs"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert "Traceback" not in completed.stdout + completed.stderr
    assert completed.returncode == 1
    assert split_summary(completed.stderr)[0] == (copy / "expected.txt").read_text()


# --- YAML people write that must be accepted (regressions of the corpus work) ------------------------------


def _valid_case(tmp_path: Path) -> Path:
    """The invalid-spec case with its mistake undone: a small valid project of all eight kinds."""
    copy = shutil.copytree(CORPUS / "invalid-spec-reported-once", tmp_path / "valid")
    model = copy / "specs/models/support-llm.yaml"
    model.write_text(model.read_text().replace("port: http", "port: 8080"))
    assert api.validate(copy / "specs") == []
    return copy


def test_yaml_1_2_numbers_and_empty_documents_are_accepted(tmp_path: Path) -> None:
    copy = _valid_case(tmp_path)
    model = copy / "specs/models/support-llm.yaml"
    model.write_text(
        "---\n"
        + model.read_text()
        + """\
  tuning:
    method: lora
    lora: {r: 16, alpha: 32}
    dataset: s3://acme-llmops-data/support/train.jsonl
    learningRate: 2e-4
  evaluation:
    dataset: s3://acme-llmops-data/support/eval.jsonl
    metrics: [token_f1]
    gates: [{metric: token_f1, min: 0.5}]
---
# a trailing separator, as kubectl-style files often end
---
"""
    )
    graph, problems = api.resolve_specs(copy / "specs")
    assert problems == [] and graph is not None
    resolved = graph.environments[0].get("Model", "support-llm")
    assert resolved is not None and resolved.spec.tuning.learning_rate == 0.0002
