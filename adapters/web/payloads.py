"""Reading the JSON that senders POST: typed, tolerant lookups that fail with one :class:`PayloadError`.

Senders' payloads are full of optional fields that may be missing or ``null`` (the documented samples
are). :class:`Fields` reads them as ``None`` or empty; a value of the wrong *shape* (an object where a
string belongs, a list that is not one) raises :class:`PayloadError` naming the field's path, so that a
route can answer 400 instead of letting a ``KeyError`` or ``TypeError`` escape.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

_INTEGER = re.compile(r"-?[0-9]{1,18}")
# What a service's own id looks like (a GUID, a number, a short name): it is sent back in the service's URLs.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def is_identifier(value: str) -> bool:
    """Whether ``value`` looks like a service's own id (see :meth:`Fields.require_id`)."""
    return _IDENTIFIER.fullmatch(value) is not None


NUL = "\x00"


def without_nul(text: str) -> str:
    """``text`` without its NUL characters, which PostgreSQL cannot store in a text column."""
    return text.replace(NUL, "")


class PayloadError(ValueError):
    """A payload that cannot be understood. The message names the field, never its value."""


def decode_json(body: bytes) -> Any:
    """The JSON document in ``body``; :class:`PayloadError` if it is not UTF-8 JSON.

    A string that holds half of a UTF-16 surrogate pair (``"\\ud800"``, which JSON allows and no text
    can hold) reads with U+FFFD in its place; an integer too long to be a number of anything reads as
    an infinite float, which no getter takes (neither a number's nor a text's)."""
    # orjson is several times faster; what it refuses (NaN, a lone surrogate, a number past a double's
    # range) the standard library decides. (orjson reads an integer past 64 bits as a float, its last
    # digits lost: no getter writes such a number as text, see fits_text.)
    try:
        if len(body) < _PAUSED_FROM:
            return orjson.loads(body)
        with _collector_paused():
            return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return _without_surrogates(json.loads(body, parse_int=_integer))
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; absurd nesting overflows the recursion
    except (ValueError, RecursionError):
        raise PayloadError("the body is not valid JSON") from None


_PAUSED_FROM = 64 * 1024  # bytes: below, what the collector could cost is less than pausing it


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, for one decoding: the collections that the allocation of each
    list in a body sets off walk every list decoded so far (1.5 MB of ``[[],[],…]`` took 0.44 s to decode
    instead of 0.05 s, holding the event loop all that time: one call into orjson never lets it go). Decoded
    JSON holds no cycle, so the collector misses nothing it must find meanwhile."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


_SURROGATE = re.compile("[\ud800-\udfff]")
_LONGEST_INTEGER = 40  # digits: far past any id or size, far below what Python refuses to convert


def _integer(digits: str) -> int | float:
    if len(digits) <= _LONGEST_INTEGER:
        return int(digits)
    return -math.inf if digits.startswith("-") else math.inf


# The integers a getter writes as text: those within 64 bits, which every decoder here reads exactly.
_TEXT_INTEGERS = range(-(2**63), 2**64)
_FLOAT_INTEGER_BOUND = 2.0**63


def fits_text(value: int) -> bool:
    """Whether :meth:`Fields.text` writes the integer ``value`` as text: one past 64 bits may have lost its last
    digits in decoding (and one past 40 digits reads as infinite), so two different ids could read as one."""
    return value in _TEXT_INTEGERS


def _number_text(value: int | float) -> str | None:
    """A number as text (an integer-valued float as an integer); None for one :func:`fits_text` refuses, or
    one that is not finite."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if not value.is_integer():
            return str(value)
        # an integer orjson read past 64 bits is a float at least 2**63 in size, its last digits lost
        return str(int(value)) if abs(value) < _FLOAT_INTEGER_BOUND else None
    return str(value) if fits_text(value) else None


class _TooDeep(Exception):
    """A value nested deeper than :data:`DEEPEST_VALUE` (JSON allows it; a tag holding it is no tag)."""


DEEPEST_VALUE = 32
"""How deep the lists and objects in a tag or property may nest: far past any real one, and decided here rather
than by how deep Python's writer may recurse from where it is called (which differs from thread to thread)."""


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds lists or objects nested deeper than ``limit`` (walked without recursion)."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            inner
            for outer in level
            if isinstance(outer, list | dict)
            for inner in (outer.values() if isinstance(outer, dict) else outer)
        ]
        if not level:
            return False
    return True


def _json_text(value: Any) -> str | None:
    """A value that is not a string, written as JSON; None for a number :func:`_number_text` refuses, or a list
    or object holding one that is not finite.

    Raises:
        _TooDeep: the value nests deeper than :data:`DEEPEST_VALUE`.
    """
    if isinstance(value, int | float) and _number_text(value) is None:
        return None
    if isinstance(value, list | dict) and _deeper_than(value, DEEPEST_VALUE):
        raise _TooDeep
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:  # an infinite float inside it (or an integer too long for Python to write)
        return None
    except RecursionError:  # (the sender's nesting, not a failure of Handoff's: never a 503)
        raise _TooDeep from None


def _without_surrogates(value: Any) -> Any:
    """``value`` (decoded JSON) with every lone surrogate replaced by U+FFFD; itself when it has none."""
    if type(value) is str:
        return _SURROGATE.sub("\ufffd", value)
    if type(value) is list:
        return [_without_surrogates(item) for item in value]
    if type(value) is dict:
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    return value


class Fields:
    """A read-only view of a JSON object with typed getters.

    Missing keys and ``null`` values read as ``None`` (or an empty :class:`Fields` / list); a value of
    another JSON type than the getter expects raises :class:`PayloadError`.

    Args:
        data: the object; ``None`` reads as an empty object.
        path: where it sits in the payload, for error messages (``resource.run``).
        ignore_case: look keys up case-insensitively when there is no exact match (Azure ML's
            documented payloads mix ``ModelName`` and ``modelName``).
    """

    __slots__ = ("_data", "_ignore_case", "_key", "_parent", "_path")

    def __init__(self, data: Mapping[str, Any] | None = None, path: str = "", *, ignore_case: bool = False):
        self._data: Mapping[str, Any] = data if data is not None else {}
        self._path = path
        self._ignore_case = ignore_case
        self._parent: Fields | None = None
        self._key = ""

    @classmethod
    def of(cls, value: Any, path: str = "", *, ignore_case: bool = False) -> Fields:
        """Wrap ``value``, which must be a JSON object (or null)."""
        if value is not None and type(value) is not dict and not isinstance(value, Mapping):
            raise PayloadError(f"{path or 'the body'}: expected a JSON object")
        return cls(value, path, ignore_case=ignore_case)

    @property
    def path(self) -> str:
        """Where this object sits in the payload (``resource.run``), for error messages."""
        # built only when asked for: a payload is read with dozens of lookups and rarely fails
        return self._parent._where(self._key) if self._parent is not None else self._path

    def __bool__(self) -> bool:
        return bool(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    @property
    def raw(self) -> Mapping[str, Any]:
        return self._data

    def _where(self, key: str) -> str:
        path = self.path
        return f"{path}.{key}" if path else key

    def get(self, key: str) -> Any:
        """The raw value at ``key`` (None when missing)."""
        value = self._data.get(key)
        if value is not None or not self._ignore_case:
            return value
        if key not in self._data:
            folded = key.casefold()
            for name, value in self._data.items():
                if isinstance(name, str) and name.casefold() == folded:
                    return value
        return None

    def obj(self, key: str) -> Fields:
        """The object at ``key``; empty when missing or null."""
        value = self.get(key)
        if value is None:
            value = _EMPTY
        elif type(value) is not dict and not isinstance(value, Mapping):
            raise PayloadError(f"{self._where(key)}: expected a JSON object")
        # built without __init__: the busiest call of every parse
        child = Fields.__new__(Fields)
        child._data, child._path, child._ignore_case = value, "", self._ignore_case
        child._parent, child._key = self, key
        return child

    def objects(self, key: str) -> list[Fields]:
        """The list of objects at ``key``; empty when missing or null. Null items are skipped."""
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise PayloadError(f"{self._where(key)}: expected a list")
        where = self._where(key)
        return [
            Fields.of(item, f"{where}[{i}]", ignore_case=self._ignore_case)
            for i, item in enumerate(value)
            if item is not None
        ]

    def text(self, key: str) -> str | None:
        """A string; numbers are written as strings (ids and versions arrive as either). None when
        missing, null or empty. NUL characters are dropped: PostgreSQL cannot store them in text. A number
        that is not finite, or an integer past 64 bits (see :func:`fits_text`), is a :class:`PayloadError`."""
        value = self.get(key)
        if type(value) is str:
            return (without_nul(value) if NUL in value else value) or None
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise PayloadError(f"{self._where(key)}: expected a string")
        written = str(value) if isinstance(value, str) else _number_text(value)
        if written is None:
            raise PayloadError(f"{self._where(key)}: expected a string, or a number within 64 bits")
        return written or None

    def require_text(self, key: str) -> str:
        """Like :meth:`text`, but missing or empty is a :class:`PayloadError`."""
        value = self.text(key)
        if value is None:
            raise PayloadError(f"{self._where(key)}: missing")
        return value

    def require_id(self, key: str) -> str:
        """Like :meth:`require_text`, for an id the sender will be asked about again (in a REST path): at most
        128 letters, digits and ``._:-``, else a :class:`PayloadError`."""
        value = self.require_text(key)
        if not is_identifier(value):
            raise PayloadError(f"{self._where(key)}: not an id (at most 128 letters, digits and ._:-)")
        return value

    def integer(self, key: str) -> int | None:
        """An integer, also from a string of digits; None when missing or null."""
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise PayloadError(f"{self._where(key)}: expected an integer")

    def number(self, key: str) -> float | None:
        """A number, also from a numeric string; None when missing or null."""
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            raise PayloadError(f"{self._where(key)}: expected a number")
        try:
            number = float(value)
        except OverflowError:  # an integer past a double's range
            raise PayloadError(f"{self._where(key)}: expected a finite number") from None
        except (TypeError, ValueError):
            raise PayloadError(f"{self._where(key)}: expected a number") from None
        if not math.isfinite(number):
            raise PayloadError(f"{self._where(key)}: expected a finite number")
        return number

    def time(self, key: str) -> datetime | None:
        """An ISO-8601 timestamp (any number of fractional digits, ``Z`` or an offset) as an aware datetime;
        None when missing, null or empty."""
        value = self.text(key)
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PayloadError(f"{self._where(key)}: not an ISO-8601 timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def strings(self, key: str) -> dict[str, str]:
        """A flat object of tags or properties, every value written as a string (null values dropped). A value
        that is a number :meth:`text` refuses, holds one that is not finite, or nests deeper than JSON is written,
        is a :class:`PayloadError`."""
        out: dict[str, str] = {}
        for name, value in self.obj(key).raw.items():
            if value is None:
                continue
            try:
                written = value if isinstance(value, str) else _json_text(value)
            except _TooDeep:
                raise PayloadError(f"{self._where(key)}: a value nests too deep") from None
            if written is None:
                raise PayloadError(f"{self._where(key)}: a value holds a number past 64 bits or not finite")
            out[str(name)] = written
        return out

    def href(self, link: str) -> str | None:
        """``_links.<link>.href``, the way Azure DevOps links resources."""
        links = self._data.get("_links")
        if type(links) is dict and type(target := links.get(link)) is dict and type(href := target.get("href")) is str:
            return href or None
        return self.obj("_links").obj(link).text("href")  # the general path, which also names a bad shape
