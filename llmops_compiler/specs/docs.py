"""Field descriptions of the spec models, read from their attribute docstrings when someone asks for them.

Each field of a spec model is documented by the string written under it (a PEP 257 attribute docstring).
pydantic can read those while it builds each class (``use_attribute_docstrings``), but that parses every
model's source on every start, about a third of the import time of :mod:`llmops_compiler.specs`; only
``llmops schema`` and ``llmops explain`` show descriptions, so they read them here instead, once.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from functools import cache

from pydantic import BaseModel
from pydantic.fields import FieldInfo


@cache
def _own_docstrings(cls: type) -> dict[str, str]:
    """Attribute name → cleaned docstring (``inspect.cleandoc``) of the annotated attributes in ``cls``'s own
    body; empty when its source cannot be read (a class made at run time)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    body = next((node.body for node in tree.body if isinstance(node, ast.ClassDef)), [])
    found: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def field_description(model: type[BaseModel], name: str, info: FieldInfo) -> str | None:
    """The description of ``model``'s field ``name`` (its Python name, not its alias): ``info.description``
    when the field sets one, else the docstring under the field in the nearest class of ``model``'s MRO that
    declares it, else None."""
    if info.description is not None:
        return info.description
    for cls in model.__mro__:
        if cls is BaseModel or not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            continue
        if name in inspect.get_annotations(cls):
            return _own_docstrings(cls).get(name)
    return None
