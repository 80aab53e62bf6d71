"""Every container the compiler writes that runs one of our step programs passes arguments that step's own
parser accepts: the compiled workflows and the runtime cannot drift apart.

Argo substitutes ``{{workflow.parameters.NAME}}`` and ``{{inputs.parameters.NAME}}`` before the container
starts: here each is replaced by every value the parameter may take (its ``enum``, else its default), as Argo
would. Other expressions and Kubernetes ``$(VAR)`` references stay as text, which string-valued flags accept;
a flag of another type must be given a literal or an enumerated parameter, which this test enforces."""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from project_paths import EXAMPLE_SPECS

from llmops_compiler import api
from llmops_compiler.emit import Resource

RUNTIME = "llmops_compiler.runtime."


def containers(document: Any) -> Iterator[dict[str, Any]]:
    """Every mapping with a ``command`` list: containers, init containers, script templates."""
    if isinstance(document, dict):
        if isinstance(document.get("command"), list):
            yield document
        for value in document.values():
            yield from containers(value)
    elif isinstance(document, list):
        for value in document:
            yield from containers(value)


@pytest.fixture(scope="module")
def example() -> list[Resource]:
    return api.build(EXAMPLE_SPECS).resources


# Inputs filled at run time from an earlier step's output parameter, with a value of the shape that step writes.
STEP_OUTPUTS = {"inputs.version": ["7"]}  # register's --version-out: the registered model version number
PARAMETER = re.compile(r"\{\{(workflow|inputs)\.parameters\.([A-Za-z0-9_-]+)\}\}")


def declared_values(document: Any, scope: str) -> dict[str, list[str]]:
    """``{name: values}`` for the parameters a workflow (``spec.arguments``) or a template (``inputs``) declares."""
    values: dict[str, list[str]] = {}
    for parameter in document.get("parameters", []):
        options = parameter.get("enum") or [parameter[key] for key in ("value", "default") if key in parameter][:1]
        if options:
            values[f"{scope}.{parameter['name']}"] = [str(option) for option in options]
    return values


def expansions(args: list[str], values: dict[str, list[str]]) -> list[list[str]]:
    """Every argument list Argo could pass: each declared parameter replaced by each of its values."""
    used = sorted({f"{m[1]}.{m[2]}" for arg in args for m in PARAMETER.finditer(arg)} & values.keys())
    results = []
    for choice in itertools.product(*(values[name] for name in used)):
        chosen = dict(zip(used, choice, strict=True))
        results.append([PARAMETER.sub(lambda m, chosen=chosen: chosen.get(f"{m[1]}.{m[2]}", m[0]), arg)
                        for arg in args])
    return results


def step_invocations(resources: list[Resource]) -> list[tuple[str, str, list[str]]]:
    found = []
    for resource in resources:
        spec = resource.body.get("spec", {})
        workflow = spec.get("workflowSpec", spec)
        workflow_values = declared_values(workflow.get("arguments", {}), "workflow")
        templates = workflow.get("templates") if isinstance(workflow.get("templates"), list) else [resource.body]
        for template in templates:
            values = {**STEP_OUTPUTS, **workflow_values, **declared_values(template.get("inputs", {}), "inputs")}
            for container in containers(template):
                command = container["command"]
                if command[:2] == ["python", "-m"] and command[2].startswith(RUNTIME):
                    for args in expansions([str(arg) for arg in container.get("args", [])], values):
                        found.append((f"{resource.environment}/{resource.kind}/{resource.name}", command[2], args))
    return found


def test_every_compiled_step_invocation_parses(example: list[Resource]) -> None:
    invocations = step_invocations(example)
    modules = {module for _, module, _ in invocations}
    # the example exercises every step the compiler schedules (a new step must be added to the example)
    assert modules >= {RUNTIME + step for step in (
        "guard", "dataset_version", "tune", "evaluate", "register", "promote", "register_prompt", "drift",
        "score", "curate", "ingest", "fetch_model")}, sorted(modules)
    for where, module, args in invocations:
        parser = importlib.import_module(module).build_parser()
        try:
            parser.parse_args(args)
        except BaseException as error:  # argparse exits; our ArgParser raises UsageError
            pytest.fail(f"{where}: {module} refuses its compiled arguments {args}: {error}")


def test_a_refused_argument_is_caught(example: list[Resource]) -> None:
    """The check above can fail: a compiled invocation with one flag renamed is refused."""
    _, module, args = next(item for item in step_invocations(example) if item[1].endswith(".score"))
    renamed = ["--modell" if arg == "--model" else arg for arg in args]
    with pytest.raises(BaseException):  # noqa: B017 - SystemExit or UsageError, whichever the parser uses
        importlib.import_module(module).build_parser().parse_args(renamed)
