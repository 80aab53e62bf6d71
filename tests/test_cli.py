"""The `llmops` command end to end: check, diff (with git), graph, schema, formats and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import yaml
from click.testing import Result
from project_paths import EXAMPLE_SPECS, ROOT

Cli = Callable[..., Result]


def test_help_starts_without_heavy_imports() -> None:
    probe = (
        "import sys; from llmops_compiler import cli; "
        "heavy = [m for m in ('pydantic', 'hera', 'kubernetes', 'torch', 'transformers', 'mlflow', 'jinja2', "
        "'cloudcoil', 'rich') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "llmops_compiler.cli", "--help"], capture_output=True,
                               text=True, check=True).stdout
    for command in ("compile", "check", "diff", "validate", "schema", "graph"):
        assert command in help_text


def test_check_passes_on_a_fresh_compile_and_fails_with_a_unified_diff_when_stale(
    cli: Cli, example_copy: Path
) -> None:
    assert cli("check", cwd=example_copy).exit_code == 0
    chain = example_copy / "generated/prod/configmaps/chain-support-answer.configmap.yaml"
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 7"))
    (example_copy / "generated/dev/namespace/support-dev.namespace.yaml").unlink()
    result = cli("check", cwd=example_copy)
    assert result.exit_code == 1
    assert "--- a/generated/prod/configmaps/chain-support-answer.configmap.yaml" in result.stdout
    assert "-      topK: 7" in result.stdout and "+      topK: 5" in result.stdout
    assert "--- /dev/null" in result.stdout
    assert "+++ b/generated/dev/namespace/support-dev.namespace.yaml" in result.stdout
    assert "stale: 2 file(s) differ" in result.stderr
    github = cli("check", "--format", "github", cwd=example_copy)
    assert github.exit_code == 1
    assert "::error file=generated/prod/configmaps/chain-support-answer.configmap.yaml,title=LLM600::" in github.stdout


def test_validate_reports_every_problem_with_positions_in_three_formats(cli: Cli, example_copy: Path) -> None:
    prompt = example_copy / "specs/prompts/rewrite-query.yaml"
    prompt.write_text(prompt.read_text().replace("model: support-llm", "model: suport-llm"))
    tool = example_copy / "specs/tools/order-status.yaml"
    tool.write_text(tool.read_text().replace("timeout: 5s", "timeout: 5 seconds"))
    human = cli("validate", cwd=example_copy)
    assert human.exit_code == 1
    assert ("specs/prompts/rewrite-query.yaml:7:10: error[LLM310]: Prompt `rewrite-query` refers to Model "
            "`suport-llm`, which no spec defines") in human.stderr
    assert "  hint: did you mean `support-llm`?" in human.stderr
    assert ("specs/tools/order-status.yaml:11:12: error[LLM105]: `timeout`: `5 seconds` is not a duration"
            in human.stderr)
    assert "Traceback" not in human.output
    as_json = json.loads(cli("validate", "--format", "json", cwd=example_copy).stdout)
    assert {(row["file"], row["line"], row["column"]) for row in as_json} == {
        ("specs/prompts/rewrite-query.yaml", 7, 10), ("specs/tools/order-status.yaml", 11, 12)
    }
    github = cli("validate", "--format", "github", cwd=example_copy).stdout.splitlines()
    assert github[0].startswith("::error file=specs/prompts/rewrite-query.yaml,line=7,col=10,title=LLM310::")


def test_exit_codes(cli: Cli, tmp_path: Path) -> None:
    assert cli("validate", cwd=ROOT).exit_code == 0
    assert cli("compile", "--no-such-flag", cwd=ROOT).exit_code == 2
    missing = cli("validate", str(tmp_path / "nope"))  # a wrong path is a usage error, reported once
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert "Project" not in missing.stderr


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin:/bin"}).stdout


def test_diff_against_a_git_base_shows_a_plan_per_environment(cli: Cli, example_copy: Path) -> None:
    _git(example_copy, "init", "-q", "-b", "main")
    _git(example_copy, "add", "-A")
    _git(example_copy, "commit", "-qm", "base")
    assert cli("diff", "--base", "HEAD", cwd=example_copy).exit_code == 0
    chain = example_copy / "specs/chains/support-answer.yaml"
    chain.write_text(chain.read_text().replace("topK: 5", "topK: 8"))
    prompt = example_copy / "specs/prompts/answer.yaml"
    prompt.write_text(prompt.read_text().replace("asks: {{ question }}", "writes: {{ question }}"))
    (example_copy / "specs/prompts/summarize-ticket.yaml").unlink()
    result = cli("diff", "--base", "HEAD", cwd=example_copy)
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    # Per environment: the chain changes, the answer prompt's ConfigMap and the prompt-registration Job (both
    # named by content) are replaced, and the removed prompt's ConfigMap is deleted; ArgoCD objects are untouched.
    assert lines[:4] == [
        "argocd: 0 to add, 0 to change, 0 to delete",
        "dev: 0 to add, 1 to change, 2 to replace, 1 to delete",
        "prod: 0 to add, 1 to change, 2 to replace, 1 to delete",
        "staging: 0 to add, 1 to change, 2 to replace, 1 to delete",
    ]
    assert any(line.startswith("-/+ prod: ConfigMap/prompt-answer-") and "(replace)" in line for line in lines)
    assert any(line.startswith("-/+ prod: Job/register-prompts-") and "(replace)" in line for line in lines)
    assert "~ prod: ConfigMap/chain-support-answer (change)" in lines
    assert "- prod: ConfigMap/prompt-summarize-ticket-" in result.stdout
    assert "        -  topK: 5\n        +  topK: 8\n" in result.stdout
    markdown = cli("diff", "--base", "HEAD", "--format", "markdown", cwd=example_copy).stdout
    assert markdown.startswith("### llmops plan\n\n- **argocd: 0 to add, 0 to change, 0 to delete**\n"
                               "- **dev: 0 to add, 1 to change, 2 to replace, 1 to delete**")
    assert "```diff" in markdown and "<details>" in markdown


def test_diff_without_base_compares_with_the_output_folder(cli: Cli, example_copy: Path) -> None:
    assert cli("diff", cwd=example_copy).exit_code == 0
    project = example_copy / "specs/project.yaml"
    project.write_text(project.read_text().replace("autoSync: false   # prod syncs by hand after review",
                                                   "autoSync: true"))
    result = cli("diff", cwd=example_copy)
    assert result.exit_code == 3
    assert "argocd: 0 to add, 1 to change, 0 to delete" in result.stdout
    assert "spec.syncPolicy.automated.prune: (none) → true" in result.stdout


def test_diff_with_an_unknown_ref_is_a_usage_error(cli: Cli, example_copy: Path) -> None:
    _git(example_copy, "init", "-q", "-b", "main")
    _git(example_copy, "add", "-A")
    _git(example_copy, "commit", "-qm", "base")
    result = cli("diff", "--base", "no-such-ref", cwd=example_copy)
    assert result.exit_code == 2 and "cannot read specs at `no-such-ref`" in result.stderr


def test_graph_in_three_formats(cli: Cli) -> None:
    text = cli("graph", str(EXAMPLE_SPECS)).stdout
    assert "Chain/support-answer\n  └─ uses KnowledgeBase/help-center\n" in text
    dot = cli("graph", str(EXAMPLE_SPECS), "--format", "dot").stdout
    assert '"Prompt/answer" -> "Model/support-llm";' in dot and dot.startswith("digraph llmops {")
    mermaid = cli("graph", str(EXAMPLE_SPECS), "--format", "mermaid").stdout
    assert "Chain_support_answer --> Tool_order_status" in mermaid


def test_schema_is_committed_and_accepts_every_example_document(cli: Cli) -> None:
    text = cli("schema").stdout
    committed = (EXAMPLE_SPECS / ".schema/llmops.schema.json").read_text()
    assert text == committed, "specs/.schema/llmops.schema.json is stale: run `llmops schema -o ...`"
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in EXAMPLE_SPECS.rglob("*.yaml"):
        first_line = path.read_text().splitlines()[0]
        assert first_line.startswith("# yaml-language-server: $schema="), path
        assert (path.parent / first_line.split("$schema=")[1]).resolve() == EXAMPLE_SPECS / ".schema/llmops.schema.json"
        for document in yaml.safe_load_all(path.read_text()):
            errors = list(validator.iter_errors(document))
            assert not errors, f"{path}: {errors[0].message}"
    bad = {"apiVersion": "llmops.dev/v1alpha1", "kind": "Model", "metadata": {"name": "m"},
           "spec": {"baseModel": "x", "registeredModel": "m", "tunning": {}}}
    assert any("tunning" in error.message for error in validator.iter_errors(bad))


def test_user_ci_workflow_and_pre_commit_hooks_run_real_commands(cli: Cli) -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/llmops.yml").read_text())
    steps = workflow["jobs"]["check"]["steps"]
    scripts = "\n".join(step.get("run", "") for step in steps)
    assert "llmops check --format github" in scripts
    assert 'llmops diff --base "origin/${BASE_REF}" --format markdown >> "$GITHUB_STEP_SUMMARY"' in scripts
    for step in steps:
        if "uses" in step:  # third-party actions pinned by commit, never by a movable tag
            assert len(step["uses"].split("@")[1]) == 40, step["uses"]
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    for hook in hooks:
        program, *arguments = hook["entry"].split()
        assert program == "llmops"
        assert cli(*arguments, "--help").exit_code == 0, hook["id"]


def test_generated_names_too_long_for_their_kind_fail_the_compile(cli: Cli, example_copy: Path) -> None:
    monitor = example_copy / "specs/monitoring/support-llm.yaml"
    monitor.write_text(monitor.read_text().replace("  name: support-llm\n", "  name: support-assistant-prod-eu\n", 1)
                       .replace("- name: prompt-length\n", "- name: prompt-length-distribution\n"))
    before = sorted(p.relative_to(example_copy).as_posix() for p in (example_copy / "generated").rglob("*"))
    result = cli("compile", cwd=example_copy)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "specs/monitoring/support-llm.yaml:5:9: error[LLM502]: this spec compiles to CronWorkflow "
        "`drift-support-assistant-prod-eu-prompt-length-distribution`, whose 58 characters are more than the 52 "
        "allowed (Argo appends an 11-character timestamp to each workflow it starts)"
    )
    assert "Traceback" not in result.output
    assert sorted(p.relative_to(example_copy).as_posix() for p in (example_copy / "generated").rglob("*")) == before
    # `validate` (the pre-commit hook) reports exactly what `compile` does, cached or not.
    for flags in ((), ("--no-cache",), ()):
        validated = cli("validate", *flags, cwd=example_copy)
        assert validated.exit_code == 1
        assert validated.stderr == result.stderr


def test_diff_shows_the_changed_part_of_long_values_and_folds_bookkeeping(cli: Cli, example_copy: Path) -> None:
    """A changed drift threshold sits deep inside a long PromQL expression: the plan shows the part that
    changed, never two cut-off values that look alike; the spec-hash annotation that changes with it is one
    folded line."""
    monitor = example_copy / "specs/monitoring/support-llm.yaml"
    monitor.write_text(monitor.read_text().replace("threshold: 0.2\n", "threshold: 0.25\n"))
    result = cli("diff", cwd=example_copy)
    assert result.exit_code == 3
    line = next(line.strip() for line in result.stdout.splitlines()
                if line.strip().startswith("spec.groups[3].rules[0].expr:"))
    before, after = line.split(": ", 1)[1].split(" → ")
    assert before != after and before.endswith("> 0.2") and after.endswith("> 0.25"), line
    assert len(before) < 120 and before.startswith("…")
    assert "(+ 1 bookkeeping field(s): spec hash " in result.stdout
    # Resources whose only change is the spec hash (the Sensor, the EventSource) are one line each.
    assert "~ prod: Sensor/monitor-support-llm (spec hash only)" in result.stdout.splitlines()


def test_diff_exits_1_on_spec_errors_and_3_on_changes(cli: Cli, example_copy: Path) -> None:
    model = example_copy / "specs/models/support-llm.yaml"
    model.write_text(model.read_text().replace("port: 8080", "port: 80800"))
    broken = cli("diff", cwd=example_copy)
    assert broken.exit_code == 1 and "error[LLM106]" in broken.stderr
    model.write_text(model.read_text().replace("port: 80800", "port: 8081"))
    assert cli("diff", cwd=example_copy).exit_code == 3


def test_init_creates_a_project_that_compiles_and_leaves_git_clean(cli: Cli, tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / ".gitignore").write_text("*.pyc")  # the team's own lines stay; ours are added after them
    created = cli("init", "specs", "--name", "shop", cwd=tmp_path)
    assert created.exit_code == 0, created.output
    assert "created specs/project.yaml" in created.output
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "*.pyc"
    compiled = cli("compile", "specs", "-o", "generated", cwd=tmp_path)
    assert compiled.exit_code == 0, compiled.output + (compiled.stderr or "")
    assert cli("check", cwd=tmp_path).exit_code == 0
    untracked = {line[3:] for line in _git(tmp_path, "status", "--porcelain", "-uall").splitlines()}
    assert untracked and all(path.split("/")[0] in ("specs", "generated", ".gitignore") for path in untracked)
    # once is enough: a second init refuses a folder with files, and leaves .gitignore as it was
    ignore = (tmp_path / ".gitignore").read_bytes()
    again = cli("init", "specs", "--name", "shop", cwd=tmp_path)
    assert again.exit_code == 2 and "is not empty" in again.output
    assert cli("init", "other", "--name", "Bad_Name", cwd=tmp_path).exit_code == 2
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")  # a link to nothing is no place for a project
    dangling = cli("init", "broken", "--name", "shop", cwd=tmp_path)
    assert dangling.exit_code == 2 and "broken exists and is not a folder" in dangling.output, dangling.output
    assert not (tmp_path / "nowhere").exists()
    assert (tmp_path / ".gitignore").read_bytes() == ignore


def test_commands_that_write_files_report_the_machine_s_refusals_without_a_traceback(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    for arguments in (("schema", "-o", str(tmp_path / "afile/x.json")),
                      ("schema", "-o", str(tmp_path / "missing/x.json")),
                      ("init", "/proc/llmops-cannot-write/specs"),
                      ("schema", "-o", "/proc/llmops-cannot-write.json")):
        result = cli(*arguments)
        assert result.exit_code == 2, arguments
        assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert not (tmp_path / "missing").exists()
    refused = cli("init", "/proc/llmops-cannot-write/specs")
    assert "No such file or directory: /proc/llmops-cannot-write" in refused.stderr


def test_compiling_elsewhere_than_the_project_s_repo_path_warns(cli: Cli, example_copy: Path) -> None:
    elsewhere = cli("compile", "specs", "-o", "out", cwd=example_copy)
    assert elsewhere.exit_code == 0
    assert elsewhere.stderr.startswith("warning: the ArgoCD Applications read `generated/<environment>`")
    assert (example_copy / "out/dev/kustomization.yaml").is_file()
    assert cli("compile", cwd=example_copy).stderr == ""


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """`.ci/run` ends with the command under **Run the tests** in the README, byte for byte, so CI runs what a
    newcomer types (its exit status is the script's), after clearing any virtual environment."""
    lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    readme = (ROOT / "README.md").read_text()
    block = readme.split("**Run the tests**", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert lines[-1] == block.strip() and "\n" not in block.strip()
    assert "apt-get update" in lines[-1] and "python -m pytest" in lines[-1]
    assert "rm -rf .venv" in lines and not any(line.startswith("set -e") for line in lines)
    result = subprocess.run(["bash", "-n", str(ROOT / ".ci/run")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_schema_names_the_file_it_cannot_write(cli: Cli) -> None:
    result = cli("schema", "-o", "/dev/full")  # every write fails with ENOSPC
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: No space left on device: /dev/full"
