"""A wait a service asked for (``Retry-After``), as a person reads it in "try again in …"."""

from __future__ import annotations

import math


def wait_text(seconds: float) -> str:
    """``seconds`` as a person reads a wait: ``45 s``, ``15 min``, ``2 h``, ``1 h 30 min`` (rounded up)."""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")
