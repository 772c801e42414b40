"""Type checks of the JSON we accept from files (saved bundles, ``cloud --evidence``): every field the
code reads is checked before it is used, and a wrong one is named by its path (``servers[2].name``), so
a malformed or hostile file gives one clear error instead of a TypeError deep in a check.

A spec is a Python type or tuple of types (``bool`` is never an ``int`` here), ``Opt(spec)`` (null
allowed), ``List(spec)``, ``Map(spec)`` (an object with any keys) or ``Obj({key: spec}, required)``
(keys not listed are allowed and ignored). Imports nothing of ours: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union


class ShapeError(ValueError):
    """A value of the wrong type; the message names the field."""


@dataclass(frozen=True)
class Opt:
    spec: Spec


@dataclass(frozen=True)
class List:
    item: Spec
    length: int | None = None


@dataclass(frozen=True)
class Map:
    value: Spec


@dataclass(frozen=True)
class Obj:
    fields: Mapping[str, Spec]
    required: tuple[str, ...] = field(default=())


Spec = Union[type, tuple[type, ...], Opt, List, Map, Obj]

_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number", dict: "an object",
          list: "a list", type(None): "null"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def _types(spec: type | tuple[type, ...]) -> tuple[type, ...]:
    return spec if isinstance(spec, tuple) else (spec,)


def describe(spec: Spec) -> str:
    if isinstance(spec, Opt):
        return f"{describe(spec.spec)} or null"
    if isinstance(spec, List):
        return "a list" if spec.length is None else f"a list of {spec.length}"
    if isinstance(spec, (Map, Obj)):
        return "an object"
    types = spec if isinstance(spec, tuple) else (spec,)
    return " or ".join(_NAMES.get(t, t.__name__) for t in types)


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    plain = key.replace("_", "").replace("-", "").isalnum()
    return (f"{where}.{key}" if where else key) if plain else f"{where}[{key!r}]"


def check(value: Any, spec: Spec, where: str = "") -> None:
    """Raise ShapeError naming the first field of ``value`` that does not fit ``spec``."""
    if isinstance(spec, Opt):
        if value is None:
            return
        inner = spec.spec
        outer_ok = (isinstance(value, list) if isinstance(inner, List) else isinstance(value, dict)
                    if isinstance(inner, (Map, Obj)) else True if isinstance(inner, Opt) else _is(value, _types(inner)))
        if not outer_ok:
            raise ShapeError(f"{where or 'the file'}: expected {describe(spec)}, got {_kind(value)}")
        check(value, spec.spec, where)
        return
    if isinstance(spec, List):
        if not isinstance(value, list):
            raise ShapeError(f"{where or 'the file'}: expected {describe(spec)}, got {_kind(value)}")
        if spec.length is not None and len(value) != spec.length:
            raise ShapeError(f"{where or 'the file'}: expected {describe(spec)}, got {len(value)} items")
        for i, item in enumerate(value):
            check(item, spec.item, _join(where, i))
        return
    if isinstance(spec, (Map, Obj)):
        if not isinstance(value, dict):
            raise ShapeError(f"{where or 'the file'}: expected an object, got {_kind(value)}")
        if isinstance(spec, Map):
            for key, item in value.items():
                check(item, spec.value, _join(where, str(key)))
            return
        for key, sub in spec.fields.items():
            if key in value:
                check(value[key], sub, _join(where, key))
        for key in spec.required:
            if key not in value:
                raise ShapeError(f"{_join(where, key)}: missing")
        return
    if not _is(value, _types(spec)):
        raise ShapeError(f"{where or 'the file'}: expected {describe(spec)}, got {_kind(value)}")
