"""Dataclasses as JSON-ready values, quickly: the ingest path turns every event and card into JSON."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

import orjson

_PLAIN = (str, int, float, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def as_json(value: Any) -> Any:
    """``value`` as JSON data: dataclasses become objects, tuples lists, datetimes ISO strings, enums
    their values.

    A round trip through orjson's C encoder and decoder, several times faster than walking the small
    frozen dataclasses Handoff is made of in Python; what orjson refuses (an integer past 64 bits) is
    walked instead.
    """
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:
        return _walk(value)


JsonText = orjson.Fragment
"""JSON already serialized, stored as it is (a JSON column writes it without encoding it again)."""


def tagged_json(value: Any) -> JsonText | dict[str, Any]:
    """``{"type": <value's class name>, **as_json(value)}`` for a dataclass, serialized once."""
    name = type(value).__name__
    try:
        body = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return {"type": name, **_walk(value)}
    head = orjson.dumps({"type": name})
    return JsonText(head if body == b"{}" else head[:-1] + b"," + body[1:])


def _walk(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(value))
    if names is not None:
        return {name: _walk(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): _walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
