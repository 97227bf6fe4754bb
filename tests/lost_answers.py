"""The ways a request's answer is lost after the emulated service acted on it: the connection dropped before the
answer, or a 500, 502 or 504 in its place (the service failing as it answered, a gateway losing or giving up on the
answer). For tests that such a request is not simply sent again."""

from __future__ import annotations

from adapters.emulators.base import Fault

LOST_ANSWERS = (
    Fault("reset_after"),
    Fault("500", after_acting=True),
    Fault("502", after_acting=True),
    Fault("504", after_acting=True),
)
LOST_ANSWER_IDS = ("reset", "500", "502", "504")
