"""Prompt templates: parsed and rendered only in Jinja2's immutable sandbox.

Compile time refuses what the sandbox would refuse at run time (private attributes such as ``__class__``,
calls to ``range`` with huge bounds are left to the sandbox) and reports undeclared variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateProblem(Exception):
    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _unsafe_attributes(tree: nodes.Template) -> list[tuple[int, str]]:
    found = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            name = node.arg.value
        else:
            continue
        if name.startswith("_") or name in {"mro", "func_globals", "gi_frame", "f_globals"}:
            found.append((node.lineno, name))
    return found


def template_variables(text: str) -> set[str]:
    """The variables a template reads; raises TemplateProblem on syntax errors and sandbox escapes."""
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError as error:
        raise TemplateProblem(
            "LLM224", f"template syntax error on template line {error.lineno}: {error.message}",
            "fix the Jinja2 syntax",
        ) from None
    unsafe = _unsafe_attributes(tree)
    if unsafe:
        line, name = unsafe[0]
        raise TemplateProblem(
            "LLM225", f"template line {line} reads the private attribute `{name}`, which the sandbox forbids",
            "templates may only read their declared inputs; this looks like a sandbox escape",
        )
    return set(meta.find_undeclared_variables(tree))


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Render in the sandbox; a sandbox violation raises ``SecurityError``."""
    return environment().from_string(text).render(**variables)


__all__ = ["SecurityError", "TemplateProblem", "render", "template_variables"]
