"""One Diagnostic type for every finding, and its human / json / github renderers."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Position:
    """A place in a spec file; line and column are 1-based, as editors show them."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True)
class Diagnostic:
    """A finding: where, what is wrong, and what would be right."""

    position: Position
    code: str
    message: str
    hint: str = ""
    severity: Severity = "error"

    def sort_key(self) -> tuple[Position, str, str]:
        return (self.position, self.code, self.message)


class CompileError(Exception):
    """Raised by the API when a stage reports errors; carries every diagnostic of the run."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sorted_unique(diagnostics)
        super().__init__(f"{len(self.diagnostics)} error(s)")


def sorted_unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Order by position and drop repeats (an override merged into several environments says it once)."""
    seen: dict[tuple[Position, str, str], Diagnostic] = {}
    for diagnostic in diagnostics:
        seen.setdefault(diagnostic.sort_key(), diagnostic)
    return [seen[key] for key in sorted(seen)]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A close-match suggestion ("did you mean `support-llm`?"), or the valid choices when few."""
    options = sorted(set(choices))
    same_letters = [option for option in options if option.lower() == word.lower()]  # `LoRA` for `lora`
    close = same_letters or difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    if options and len(options) <= 8:
        return "expected one of: " + ", ".join(f"`{option}`" for option in options)
    return ""


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    """Control characters from a spec (a key with a newline, an ANSI escape) shown escaped, as `\\n` or
    `\\x1b`: one finding stays one line, and a spec cannot drive the terminal."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def render_human(diagnostics: Sequence[Diagnostic], color: bool = False) -> str:
    lines = []
    for diagnostic in diagnostics:
        label: str = diagnostic.severity
        if color:
            tint = "31" if diagnostic.severity == "error" else "33"
            label = f"\x1b[1;{tint}m{label}\x1b[0m"
        lines.append(f"{_printable(str(diagnostic.position))}: {label}[{diagnostic.code}]: "
                     f"{_printable(diagnostic.message)}")
        if diagnostic.hint:
            lines.append(f"  hint: {_printable(diagnostic.hint)}")
    errors = sum(1 for diagnostic in diagnostics if diagnostic.severity == "error")
    if diagnostics:
        lines.append(f"{errors} error(s), {len(diagnostics) - errors} warning(s)")
    return "\n".join(lines)


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    rows = []
    for diagnostic in diagnostics:
        row = asdict(diagnostic)
        position = row.pop("position")
        rows.append({**position, **row})
    return json.dumps(rows, indent=2)


def _escape_github(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def render_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands, so findings show as annotations on the pull request."""
    lines = []
    for diagnostic in diagnostics:
        position = diagnostic.position
        props = [f"file={_escape_github(position.file, True)}"]
        if position.line:
            props += [f"line={position.line}", f"col={position.column}"]
        props.append(f"title={_escape_github(diagnostic.code, True)}")
        text = diagnostic.message + (f" ({diagnostic.hint})" if diagnostic.hint else "")
        lines.append(f"::{diagnostic.severity} {','.join(props)}::{_escape_github(text)}")
    return "\n".join(lines)


def render(diagnostics: Sequence[Diagnostic], output_format: str, color: bool = False) -> str:
    if output_format == "json":
        return render_json(diagnostics)
    if output_format == "github":
        return render_github(diagnostics)
    return render_human(diagnostics, color=color)
