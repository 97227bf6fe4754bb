"""Events read back from the event log: a received event's stored payload becomes its domain event again.

The ingest stores each event as ``tagged_json`` (its class name under ``type``, then its fields). Reading
it back is for looking over what arrived (a subscription's dry run), never for routing: an event stored
by another version of Handoff, whose type or fields this version does not know, reads as None.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from bot.events import DomainEvent


def event_from_json(payload: Mapping[str, Any]) -> DomainEvent | None:
    """The event a stored payload describes; None for a type or shape this version does not know."""
    fields = dict(payload)
    adapter = _adapter(str(fields.pop("type", "")))
    if adapter is None:
        return None
    try:
        return adapter.validate_python(fields)
    except ValidationError:
        return None


@cache
def _adapter(type_name: str) -> TypeAdapter[DomainEvent] | None:
    kind = next((k for k in _event_classes() if k.__name__ == type_name), None)
    return TypeAdapter(kind) if kind is not None else None


def _event_classes(base: type[DomainEvent] = DomainEvent) -> Iterator[type[DomainEvent]]:
    for kind in base.__subclasses__():
        yield kind
        yield from _event_classes(kind)
