"""Reading the spec models' type annotations: the concrete types inside ``Optional``/``Union``/``Annotated``."""

from __future__ import annotations

import types
import typing
from typing import Any


def unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated annotations (``list[X]`` and ``dict[K, V]`` stay)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [inner for arg in typing.get_args(annotation) for inner in unwrap(arg)]
    return [annotation]
