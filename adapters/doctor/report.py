"""One line per check: what was checked, how it went, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

DEADLINE = 20.0
"""Seconds a check waits for a service's answer before it fails as unanswered."""


class Status(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """The outcome of one check. ``detail`` and ``fix`` never contain a secret."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def line(self) -> str:
        hint = f" (fix: {self.fix})" if self.fix and self.status in (Status.FAIL, Status.WARN) else ""
        return f"{self.status.value:<4}  {self.name:<34} {self.detail}{hint}"


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def warn(name: str, detail: str, fix: str = "") -> Check:
    return Check(name, Status.WARN, detail, fix)


def skip(name: str, detail: str) -> Check:
    return Check(name, Status.SKIP, detail)


class _Section(Protocol):
    @property
    def enabled(self) -> bool: ...


def section_off(section: _Section | None) -> str | None:
    """Why a configuration section's checks are skipped (absent: ``not configured``; ``enabled: false``:
    ``disabled``), or None."""
    if section is None:
        return "not configured"
    if not section.enabled:
        return "disabled (enabled: false)"
    return None
