"""A card's stage list shortened to fit a platform's message limits, without hiding where the run stands.

A renderer that cannot show every :class:`~bot.cards.Step` keeps the ones that need attention (running,
waiting for approval, failed, succeeded with issues) and the current one (the last the run reached), then as
many of the others as fit, nearest the current one first; the runs of stages it leaves out become a
:class:`Gap` that says how many there are and how they ended ("12 more stages, all succeeded").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bot.cards import Status, Step

ATTENTION = frozenset({Status.RUNNING, Status.WAITING, Status.FAILED, Status.PARTIAL, Status.WARNING})
"""Stages a shortened list always shows (as long as anything fits)."""

_NOT_REACHED = frozenset({Status.QUEUED, Status.SKIPPED})


@dataclass(frozen=True)
class Gap:
    """Consecutive stages left out of a shortened list."""

    steps: tuple[Step, ...]

    def describe(self) -> str:
        """``12 more stages, all succeeded`` or ``3 more stages: 2 succeeded, 1 skipped``."""
        count = len(self.steps)
        noun = "stage" if count == 1 else "stages"
        tally = Counter(step.status for step in self.steps)
        if len(tally) == 1:
            [status] = tally
            ended = status.label.lower()
            return f"{count} more {noun}, {ended}" if count == 1 else f"{count} more {noun}, all {ended}"
        parts = ", ".join(f"{n} {status.label.lower()}" for status, n in tally.most_common())
        return f"{count} more {noun}: {parts}"


def current_index(steps: Sequence[Step]) -> int | None:
    """Where the run stands: the last stage it reached (neither queued nor skipped), else the first; None
    without stages. Stages are listed in the order they started."""
    if not steps:
        return None
    reached = [i for i, step in enumerate(steps) if step.status not in _NOT_REACHED]
    return reached[-1] if reached else 0


def keep_order(steps: Sequence[Step]) -> list[int]:
    """Every stage's index, in the order a shortened list should keep them: the current stage, the stages
    that need attention, then the rest; within each, nearest the current stage first (earlier on a tie)."""
    current = current_index(steps)
    if current is None:
        return []

    def rank(i: int) -> tuple[int, int, int]:
        group = 0 if i == current else 1 if steps[i].status in ATTENTION else 2
        return group, abs(i - current), i

    return sorted(range(len(steps)), key=rank)


def shortened(steps: Sequence[Step], keep: Collection[int]) -> list[Step | Gap]:
    """``steps`` in order with those whose index is not in ``keep`` grouped into :class:`Gap` runs."""
    shown: list[Step | Gap] = []
    left_out: list[Step] = []
    for i, step in enumerate(steps):
        if i in keep:
            if left_out:
                shown.append(Gap(tuple(left_out)))
                left_out = []
            shown.append(step)
        else:
            left_out.append(step)
    if left_out:
        shown.append(Gap(tuple(left_out)))
    return shown
