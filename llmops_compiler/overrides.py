"""Environment overrides merged onto a spec, as the README documents them.

- A mapping merges key by key; ``key: null`` removes the key.
- A list of named items (those whose model declares a ``merge_key``: SLOs, drift checks, features, steps,
  inputs, gates and quality checks by ``metric``, ...) merges item by item on that key: an override item
  merges onto the base item of the same name, a new name is appended, and ``$patch: delete`` removes one
  (the strategic-merge-patch directive kubectl and kustomize use).
- Any other list (tolerations, rollout steps, examples, target modules, ...) replaces the base list.

Every merged list item remembers where it came from, so a problem in it is reported in the override's text
when the override wrote it, and in the base spec otherwise.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .annotations import unwrap
from .load import YamlPath

PATCH_KEY = "$patch"
PATCH_DELETE = "delete"


@dataclass
class Merged:
    """The merged spec, where each merged list item came from, and the override's mistakes."""

    data: Any
    items: dict[YamlPath, tuple[YamlPath | None, YamlPath | None]] = field(default_factory=dict)
    """Merged item path → (its path in the base spec, its path in the override), both relative to the spec."""
    problems: list[tuple[YamlPath, str, str]] = field(default_factory=list)
    """(path in the override, message, hint)."""


def _field_type(model: Any, key: str) -> Any:
    """The annotation of the field written ``key`` (its alias) in ``model``, or None."""
    for candidate in unwrap(model):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            for name, info in candidate.model_fields.items():
                if key in (info.alias, name):
                    return info.annotation
        if typing.get_origin(candidate) is dict:
            return typing.get_args(candidate)[1]
    return None


def merge_key(list_type: Any) -> tuple[str | None, Any]:
    """The merge key of a list's items (None for a list that is replaced) and the item type."""
    for candidate in unwrap(list_type):
        if typing.get_origin(candidate) is list:
            item = typing.get_args(candidate)[0]
            for inner in unwrap(item):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    return getattr(inner, "merge_key", None), item
            return None, item
    return None, None


def merge_override(base: Any, override: Any, model: Any) -> Merged:
    """``override`` merged onto ``base`` (both plain data) following the rules above; ``model`` is the pydantic
    model (or annotation) of ``base``, which says which lists merge by name."""
    merged = Merged(None)
    merged.data = _merge(base, override, model, (), (), (), merged)
    return merged


def _merge(base: Any, override: Any, model: Any, path: YamlPath, base_path: YamlPath | None,
           override_path: YamlPath, merged: Merged) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            if value is None:
                result.pop(key, None)
                continue
            child_type = _field_type(model, key)
            result[key] = _merge(base.get(key), value, child_type, (*path, key),
                                 (*base_path, key) if base_path is not None and key in base else None,
                                 (*override_path, key), merged)
        return result
    key_name, item_type = merge_key(model)
    if isinstance(base, list) and isinstance(override, list) and key_name is not None and _keyed(base, key_name) \
            and _keyed(override, key_name):
        return _merge_named(base, override, key_name, item_type, path, base_path, override_path, merged)
    return copy.deepcopy(override)


def _keyed(items: list[Any], key_name: str) -> bool:
    return all(isinstance(item, dict) and isinstance(item.get(key_name), str) for item in items)


def _merge_named(base: list[Any], override: list[Any], key_name: str, item_type: Any, path: YamlPath,
                 base_path: YamlPath | None, override_path: YamlPath, merged: Merged) -> list[Any]:
    base_index = {item[key_name]: index for index, item in enumerate(base)}
    changes: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, item in enumerate(override):
        if item[key_name] in changes:
            merged.problems.append(((*override_path, index, key_name),
                                    f"the override names `{item[key_name]}` twice", "merge the two entries"))
        if PATCH_KEY in item and item[PATCH_KEY] != PATCH_DELETE:
            merged.problems.append(((*override_path, index, PATCH_KEY),
                                    f"`$patch: {item[PATCH_KEY]}` is not a directive this merge knows: only "
                                    f"`$patch: {PATCH_DELETE}` (remove the item)",
                                    f"write `$patch: {PATCH_DELETE}` to remove `{item[key_name]}`, or drop `$patch` "
                                    "to merge the entry into it"))
        elif PATCH_KEY in item and set(item) - {key_name, PATCH_KEY}:
            others = ", ".join(f"`{key}`" for key in item if key not in (key_name, PATCH_KEY))
            merged.problems.append(((*override_path, index, PATCH_KEY),
                                    f"`$patch: {PATCH_DELETE}` removes `{item[key_name]}`, so {others} beside it "
                                    "would be ignored", f"keep only `{key_name}` and `$patch: {PATCH_DELETE}`"))
        changes[item[key_name]] = (index, item)
    result: list[Any] = []
    sources: list[tuple[YamlPath | None, YamlPath | None]] = []
    for name, index in base_index.items():
        item = base[index]
        item_base = (*base_path, index) if base_path is not None else None
        if name not in changes:
            result.append(item)
            sources.append((item_base, None))
            continue
        override_index, change = changes.pop(name)
        item_override = (*override_path, override_index)
        if change.get(PATCH_KEY) == PATCH_DELETE:
            continue
        patch = {key: value for key, value in change.items() if key != PATCH_KEY}
        result.append(_merge(item, patch, item_type, (*path, len(result)), item_base, item_override, merged))
        sources.append((item_base, item_override))
    for name, (override_index, change) in sorted(changes.items(), key=lambda entry: entry[1][0]):
        item_override = (*override_path, override_index)
        if change.get(PATCH_KEY) == PATCH_DELETE:
            merged.problems.append(((*item_override, PATCH_KEY),
                                    f"`$patch: delete` removes `{name}`, which the base spec does not have",
                                    "check the name, or remove this entry"))
            continue
        result.append({key: value for key, value in change.items() if key != PATCH_KEY})
        sources.append((None, item_override))
    for index, source in enumerate(sources):
        merged.items[(*path, index)] = source
    return result


def translate(path: YamlPath, items: dict[YamlPath, tuple[YamlPath | None, YamlPath | None]]
              ) -> tuple[YamlPath | None, YamlPath | None]:
    """A merged path as (base path, override path), either None when that side does not hold it."""
    base: YamlPath | None = ()
    override: YamlPath | None = ()
    prefix: YamlPath = ()
    for element in path:
        prefix = (*prefix, element)
        if prefix in items:
            base, override = items[prefix]
            continue
        base = (*base, element) if base is not None else None
        override = (*override, element) if override is not None else None
    return base, override
