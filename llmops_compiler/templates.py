"""Prompt templates: parsed and rendered only in Jinja2's immutable sandbox.

Compile time refuses what the sandbox would refuse at run time (private attributes such as ``__class__``,
calls to ``range`` with huge bounds are left to the sandbox) and reports undeclared variables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateProblem(Exception):
    """A template that cannot be accepted; ``line`` is the line of the template it is on (1-based)."""

    def __init__(self, code: str, message: str, hint: str = "", line: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.line = line


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _constant(node: nodes.Expr) -> Any:
    """A string spelt out of constants (``'__cl' ~ 'ass__'``), else None. Only concatenation is folded, never
    arithmetic, so that a template cannot make the compiler build a huge value."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Concat):
        parts = node.nodes
    elif isinstance(node, nodes.Add):
        parts = [node.left, node.right]
    else:
        return None
    texts = [_constant(part) for part in parts]
    return "".join(texts) if all(isinstance(text, str) for text in texts) else None


def _attribute_names(tree: nodes.Template) -> Iterator[tuple[int, Any]]:
    """Each attribute a template reads by a name known at parse time: `x.a`, `x['a']`, `x|attr('a')`."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            yield node.lineno, node.attr
        elif isinstance(node, nodes.Getitem):
            yield node.lineno, _constant(node.arg)
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            yield node.lineno, _constant(node.args[0])


def _unsafe_attributes(tree: nodes.Template) -> list[tuple[int, str]]:
    private = {"mro", "func_globals", "gi_frame", "f_globals"}
    return [
        (line, name) for line, name in _attribute_names(tree)
        if isinstance(name, str) and (name.startswith("_") or name in private)
    ]


def template_variables(text: str) -> dict[str, int]:
    """The variables a template reads, each with the first template line that reads it; raises
    TemplateProblem on syntax errors and sandbox escapes."""
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError as error:
        raise TemplateProblem(
            "LLM224", f"template syntax error on template line {error.lineno}: {error.message}",
            "fix the Jinja2 syntax", line=error.lineno,
        ) from None
    unsafe = _unsafe_attributes(tree)
    if unsafe:
        line, name = unsafe[0]
        raise TemplateProblem(
            "LLM225", f"template line {line} reads the private attribute `{name}`, which the sandbox forbids",
            "templates may only read their declared inputs; this looks like a sandbox escape", line=line,
        )
    undeclared = meta.find_undeclared_variables(tree)
    first_read: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in undeclared:
            first_read[node.name] = min(first_read.get(node.name, node.lineno), node.lineno)
    return {name: first_read.get(name, 1) for name in sorted(undeclared)}


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Render in the sandbox; a sandbox violation raises ``SecurityError``."""
    return environment().from_string(text).render(**variables)


__all__ = ["SecurityError", "TemplateProblem", "render", "template_variables"]
