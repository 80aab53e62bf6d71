"""Prompt templates: parsed and rendered only in Jinja2's immutable sandbox, with bounded work.

Compile time refuses what the sandbox would refuse at run time (private attributes such as ``__class__``, and
``str.format``/``format_map``, the way around the sandbox's attribute checks behind CVE-2025-27516) and
reports undeclared variables. Work is bounded both when a template is analysed and when it is rendered:
Jinja2 folds constant expressions while it compiles, even in the sandbox, so ``{{ 10**4300 }}`` or
``{{ 'x' * 1000000000 }}`` would run inside the compiler. Here ``*`` and ``**`` are intercepted (never folded,
and checked when rendered), and a template may hold at most ``MAX_NODES`` syntax nodes nested at most
``MAX_DEPTH`` deep.
"""

from __future__ import annotations

import math
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


MAX_NODES = 5000
MAX_DEPTH = 40
MAX_SEQUENCE = 100_000  # longest string or list a template may build with `*`
MAX_POWER_DIGITS = 100  # largest power a template may compute with `**`, in decimal digits


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with ``*`` and ``**`` intercepted: never folded at compile time, and bounded when a
    template is rendered (a repeated string of at most ``MAX_SEQUENCE`` items, a power of at most
    ``MAX_POWER_DIGITS`` digits)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int) \
                        and len(sequence) * times > MAX_SEQUENCE:
                    raise SecurityError(f"a template may not build a sequence of more than {MAX_SEQUENCE} items")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
                and right * math.log10(abs(left)) > MAX_POWER_DIGITS:
            raise SecurityError(f"a template may not compute a power of more than {MAX_POWER_DIGITS} digits")
        return super().call_binop(context, operator, left, right)


def _bounded_width(name: str, filter_function: Any) -> Any:
    """A padding filter (``center``, ``indent``) whose width is bounded like ``*``."""
    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > MAX_SEQUENCE:
            raise SecurityError(f"`{name}` may not pad to more than {MAX_SEQUENCE} characters")
        return filter_function(value, width, *args, **kwargs)
    return bounded


@lru_cache(maxsize=1)
def environment() -> BoundedSandbox:
    # `optimized=False`: nothing is evaluated while a template is compiled (Jinja2 would otherwise fold
    # constant filter calls such as `'x'|center(1000000000)` inside the compiler).
    sandbox = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, optimized=False)
    for name in ("center", "indent"):
        sandbox.filters[name] = _bounded_width(name, sandbox.filters[name])
    return sandbox


def _size_problem(tree: nodes.Template) -> TemplateProblem | None:
    """A template too large or too deeply nested to analyse, or None (iterative: no recursion limit)."""
    count = 0
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            return TemplateProblem("LLM226", f"the template has more than {MAX_NODES} expressions",
                                   "split it, or move logic out of the template", line=node.lineno or 1)
        if depth > MAX_DEPTH:
            return TemplateProblem("LLM226", f"template line {node.lineno} nests expressions more than "
                                   f"{MAX_DEPTH} levels deep", "simplify the expression", line=node.lineno or 1)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return None


def _unbounded_constant(tree: nodes.Template) -> TemplateProblem | None:
    """A `*`, `**` or padding filter on constants that rendering would refuse: reported now, as a template
    error, rather than when a request renders it."""
    for node in tree.find_all((nodes.Mul, nodes.Pow, nodes.Filter)):
        try:
            if isinstance(node, nodes.Mul | nodes.Pow):
                left, right = node.left, node.right
                if isinstance(left, nodes.Const) and isinstance(right, nodes.Const):
                    # within the bounds the result is small and cheap; beyond them this raises before computing
                    environment().call_binop(None, "*" if isinstance(node, nodes.Mul) else "**", left.value,
                                             right.value)
            elif isinstance(node, nodes.Filter) and node.name in ("center", "indent") and node.args \
                    and isinstance(node.args[0], nodes.Const):
                environment().filters[node.name]("", node.args[0].value)
        except SecurityError as error:
            return TemplateProblem("LLM226", f"template line {node.lineno}: {error}", "use smaller numbers",
                                   line=node.lineno)
        except (TypeError, ValueError, ArithmeticError):
            continue
    return None


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
    # `format`/`format_map` reach str.format, which reads attributes of its arguments outside the sandbox's
    # checks (CVE-2025-27516, fixed in Jinja2 3.1.6; refused here whatever the installed version).
    private = {"mro", "func_globals", "gi_frame", "f_globals", "format", "format_map"}
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
    except RecursionError:  # the parser recurses per nesting level: `((((...))))`
        raise TemplateProblem("LLM226", "the template nests expressions too deeply to parse",
                              "simplify the expression") from None
    too_large = _size_problem(tree) or _unbounded_constant(tree)
    if too_large is not None:
        raise too_large
    unsafe = _unsafe_attributes(tree)
    if unsafe:
        line, name = unsafe[0]
        what = "the string-formatting method" if name in ("format", "format_map") else "the private attribute"
        raise TemplateProblem(
            "LLM225", f"template line {line} reads {what} `{name}`, which the sandbox forbids",
            "templates may only read their declared inputs; this looks like a sandbox escape", line=line,
        )
    try:
        undeclared = meta.find_undeclared_variables(tree)
    except (RecursionError, ArithmeticError, MemoryError, SecurityError) as error:
        raise TemplateProblem("LLM226", f"the template cannot be analysed within bounds: {type(error).__name__}",
                              "simplify the expressions") from None
    first_read: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in undeclared:
            first_read[node.name] = min(first_read.get(node.name, node.lineno), node.lineno)
    return {name: first_read.get(name, 1) for name in sorted(undeclared)}


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Render in the sandbox; a sandbox violation raises ``SecurityError``."""
    return environment().from_string(text).render(**variables)


__all__ = ["SecurityError", "TemplateProblem", "render", "template_variables"]
