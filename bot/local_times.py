"""Times people type and read in chat: in their own time zone where their platform tells it, else in UTC.

``17:00`` is the next 17:00 there, ``tomorrow`` 09:00 the next day there, and a date and time without an offset
(``2026-12-01T09:00``) is one there; one with an offset (``…Z``, ``…+01:00``) is that very time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The hour a day typed alone (``tomorrow``, ``2026-12-01``) starts at: the start of a working day.
MORNING = time(9, 0)
_TIME_OF_DAY = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$", re.IGNORECASE)


class NotATime(ValueError):
    """The text is no time Handoff reads."""


def zone_named(name: str | None) -> ZoneInfo | None:
    """The time zone of an IANA name (``Europe/Paris``, as Slack and Teams tell a person's); None for no name, or
    one this machine does not know."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def time_typed(text: str, now: datetime, zone: tzinfo | None) -> datetime:
    """The moment ``text`` names, read in ``zone`` (UTC where None): ``17:00`` or ``5pm`` (the next such time),
    ``tomorrow`` (09:00 the next day), a date alone (09:00 that day), or a date and time in ISO form, with or
    without an offset. Raises :class:`NotATime`. The moment may be past: the caller tells."""
    here = zone or UTC
    local_now = now.astimezone(here)
    typed = text.strip().lower()
    if typed == "tomorrow":
        return _at(local_now.date() + timedelta(days=1), MORNING, here)
    if match := _TIME_OF_DAY.match(typed):
        hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
        if match.group(2) is None and half is None:
            raise NotATime(text)  # a bare number is no time of day
        if half is not None:
            if not 1 <= hour <= 12:
                raise NotATime(text)
            hour = hour % 12 + (12 if half == "pm" else 0)
        if hour > 23 or minute > 59:
            raise NotATime(text)
        at = time(hour, minute)
        today = local_now.date()
        # the next one: today's (its second occurrence too, where the clock goes back over it), else tomorrow's
        candidates = (_at(today, at, here), _at(today, at, here, second=True), _at(today + timedelta(days=1), at, here))
        return next(moment for moment in candidates if moment > now)
    try:
        if re.fullmatch(r"\d{4}-?\d{2}-?\d{2}|\d{4}-?w\d{2}(-?\d)?", typed):  # a date alone, or an ISO week
            return _at(date.fromisoformat(typed.upper()), MORNING, here)
        moment = datetime.fromisoformat(_upper_z(text.strip()))
    except ValueError:
        raise NotATime(text) from None
    return moment.replace(tzinfo=here) if moment.tzinfo is None else moment


def _upper_z(text: str) -> str:
    """ISO text with its UTC designator as ``Z`` (``…T09:00z`` is typed too)."""
    return text[:-1] + "Z" if text.endswith("z") else text


def shown(moment: datetime, zone: tzinfo | None) -> str:
    """A moment as a person reads it: ``2026-12-01 17:00 Europe/Paris time (16:00 UTC)`` in their zone, with UTC
    beside it; ``2026-12-01 16:00 UTC`` where their zone is UTC or not known."""
    utc = moment.astimezone(UTC)
    clock = "%H:%M:%S" if utc.second else "%H:%M"  # (a moment typed to the second is shown so)
    if zone is None or _is_utc(zone):
        return f"{utc:%Y-%m-%d {clock}} UTC"
    local = utc.astimezone(zone)
    in_utc = f"{utc:{clock}}" if local.date() == utc.date() else f"{utc:%Y-%m-%d {clock}}"
    return f"{local:%Y-%m-%d {clock}} {zone} time ({in_utc} UTC)"


def _is_utc(zone: tzinfo) -> bool:
    """Whether ``zone`` is UTC under any of its names (``Etc/UCT``, ``GMT0``…): its offset is nil all year."""
    if zone is UTC:
        return True
    year = datetime.now(UTC).year
    return all(zone.utcoffset(datetime(year, month, 1)) == timedelta(0) for month in (1, 4, 7, 10)) and not any(
        zone.dst(datetime(year, month, 1)) for month in (1, 4, 7, 10)
    )


def _at(day: date, at: time, zone: tzinfo, *, second: bool = False) -> datetime:
    """``at`` on ``day`` in ``zone``, as a moment in UTC (a time a clock change skips is read as after it; one it
    repeats as its first occurrence, or with ``second`` its second). (In UTC: Python never finds a local time
    that a clock change repeats equal to a time in another zone.)"""
    return datetime.combine(day, at, tzinfo=zone).replace(fold=int(second)).astimezone(UTC)


def names_its_offset(text: str) -> bool:
    """Whether ``text`` is a date and time with its offset (``2026-12-01T09:00Z``): the same moment whatever the
    zone of whoever typed it."""
    try:
        return datetime.fromisoformat(_upper_z(text.strip())).tzinfo is not None
    except ValueError:
        return False
