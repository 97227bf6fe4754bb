"""Model versions in order: Azure ML numbers them ("9" before "10"), and a version may be dotted ("1.10")."""

from __future__ import annotations


def version_order(version: str) -> tuple[int, ...] | None:
    """A model version as the numbers it is ordered by ("12" → (12,), "1.10.0" → (1, 10)); None for a
    version that is not made of numbers, which Handoff cannot order."""
    parts = version.strip().split(".")
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    numbers = [int(p) for p in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def is_newer_version(version: str, than: str) -> bool:
    """Whether model version ``version`` is later than ``than``, as numbers ("10" is later than "9"); never
    when either is not made of numbers."""
    mine, theirs = version_order(version), version_order(than)
    return mine is not None and theirs is not None and mine > theirs


def version_sort_key(version: str) -> tuple[int, tuple[int, ...], str]:
    """A key that sorts model versions as numbers ("9" < "10" < "10.1", "1.9" < "1.10"); a version not made of
    numbers sorts before all of them, by its text."""
    numbers = version_order(version)
    return (1, numbers, "") if numbers is not None else (0, (), version)
