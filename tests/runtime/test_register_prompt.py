"""register_prompt: prompts from a mounted ConfigMap directory into MLflow's prompt registry."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_compiler.runtime import register_prompt as rp


def _write_prompt(d: Path, name: str, template: str, content_hash: str, version: str = "1.0.0") -> Path:
    p = d / f"{name}.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "version": version,
                "template": template,
                "inputs": ["question", "context"],
                "model": "support-llm",
                "contentHash": content_hash,
            }
        )
    )
    return p


@pytest.fixture
def prompts_dir(tmp_path: Path) -> tuple[Path, str, str]:
    """A directory shaped like a mounted ConfigMap: two prompt files plus hidden ``..data`` entries."""
    d = tmp_path / "prompts"
    d.mkdir()
    suffix = uuid.uuid4().hex[:8]
    a, b = f"answer-{suffix}", f"summarize-{suffix}"
    _write_prompt(d, a, "Context: {{ context }}\nQuestion: {{ question }}\nAnswer:", "hash-a1")
    _write_prompt(d, b, "Summarize {{context}} for {{ question }}.", "hash-b1")
    (d / "..2026_11_22_00_00_00.123").mkdir()
    (d / "..data").symlink_to(d / "..2026_11_22_00_00_00.123")
    (d / ".hidden.yaml").write_text("not: a prompt\n")
    return d, a, b


def _by_alias(client: Any, name: str, alias: str) -> Any:
    return client.get_prompt_version_by_alias(name, alias)


def _count_versions(client: Any, name: str) -> int:
    return len(list(client.search_prompt_versions(name)))


def test_register_two_prompts_then_idempotent_then_new_version(
    prompts_dir: tuple[Path, str, str], mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    d, a, b = prompts_dir
    argv = [
        "--prompts-dir",
        str(d),
        "--alias",
        "staging",
        "--git-commit",
        "abc123",
        "--mlflow-tracking-uri",
        mlflow_uri,
    ]
    assert rp.main(argv) == 0
    out = capsys.readouterr().out
    assert f"{a} version 1 (registered), alias staging" in out
    assert f"{b} version 1 (registered), alias staging" in out

    client = MlflowClient(mlflow_uri)
    pa = _by_alias(client, a, "staging")
    assert str(pa.version) == "1"
    assert pa.template == "Context: {{ context }}\nQuestion: {{ question }}\nAnswer:"  # stored as is
    assert pa.tags["llmops.content_hash"] == "hash-a1"
    assert pa.tags["llmops.git_commit"] == "abc123"
    assert pa.tags["llmops.spec_version"] == "1.0.0"
    assert pa.tags["llmops.model"] == "support-llm"
    assert pa.tags["llmops.inputs"] == "question,context"
    assert pa.format(context="C", question="Q") == "Context: C\nQuestion: Q\nAnswer:"
    pb = _by_alias(client, b, "staging")
    assert pb.template == "Summarize {{context}} for {{ question }}."

    # Same content again (another commit): no new version, alias still set.
    assert rp.main([*argv[:5], "def456", *argv[6:]]) == 0
    assert "(unchanged)" in capsys.readouterr().out
    assert _count_versions(client, a) == 1 and _count_versions(client, b) == 1

    # Changed template for one prompt: version 2 and the alias moves; the other prompt is untouched.
    _write_prompt(d, a, "Q: {{ question }}\nC: {{ context }}\nA:", "hash-a2", version="1.1.0")
    assert rp.main(argv) == 0
    assert _count_versions(client, a) == 2 and _count_versions(client, b) == 1
    pa2 = _by_alias(client, a, "staging")
    assert str(pa2.version) == "2"
    assert pa2.template == "Q: {{ question }}\nC: {{ context }}\nA:"
    assert pa2.tags["llmops.content_hash"] == "hash-a2"
    assert str(client.get_prompt_version(a, 1).template).startswith("Context:")

    # A second environment alias on the same versions.
    assert rp.main(["--prompt-file", str(d / f"{a}.yaml"), "--alias", "prod", *argv[4:]]) == 0
    assert str(_by_alias(client, a, "prod").version) == "2"
    assert _count_versions(client, a) == 2


def test_content_hash_computed_when_absent(tmp_path: Path, mlflow_uri: str) -> None:
    from mlflow import MlflowClient

    name = f"nohash-{uuid.uuid4().hex[:8]}"
    f = tmp_path / "p.yml"
    f.write_text(yaml.safe_dump({"name": name, "template": "Hi {{ user }}"}))
    files = rp.collect_prompt_files(None, [str(f)])
    [r1] = rp.register_prompts(files, "dev", "c1", mlflow_uri)
    [r2] = rp.register_prompts(files, "dev", "c2", mlflow_uri)
    assert (r1.version, r1.created, r2.version, r2.created) == (1, True, 1, False)
    pv = MlflowClient(mlflow_uri).get_prompt_version(name, 1)
    assert pv.tags["llmops.content_hash"] == rp.content_hash_of("Hi {{ user }}")


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        ("name: x\n", [], "'template' must be a non-empty string"),
        ("name: 'bad name'\ntemplate: t\n", [], "may only contain letters"),
        ("[1, 2]\n", [], "expected a mapping"),
        ("name: x\ntemplate: [\n", [], "invalid YAML"),
        ("name: x\ntemplate: t\n", ["--alias", "latest"], "invalid alias 'latest'"),
    ],
)
def test_bad_prompt_files_exit_2(
    tmp_path: Path,
    mlflow_uri: str,
    capsys: pytest.CaptureFixture[str],
    content: str,
    extra: list[str],
    expected: str,
) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(content)
    argv = [
        "--prompt-file",
        str(f),
        "--alias",
        "dev",
        "--git-commit",
        "c",
        "--mlflow-tracking-uri",
        mlflow_uri,
    ]
    rc = rp.main([*argv, *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert expected in err and err.startswith("register_prompt: error:")


def test_empty_prompts_dir_exits_2(tmp_path: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--prompts-dir",
        str(tmp_path),
        "--alias",
        "dev",
        "--git-commit",
        "c",
        "--mlflow-tracking-uri",
        mlflow_uri,
    ]
    assert rp.main(argv) == 2
    assert "no prompt files given" in capsys.readouterr().err
