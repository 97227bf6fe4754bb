"""Microsoft Teams for Handoff, on botbuilder (``CloudAdapter``) behind a fixed ``/api/messages`` handler.

Everything botbuilder-specific stays in this package, so that moving to the Microsoft 365 Agents SDK is
a change here only. The composition root uses :func:`mount_teams` (the messaging endpoint and the
:class:`TeamsChatChannel` for the outbox) and :func:`build_teams_package` (``handoff teams-package``).

The names are imported on first use, so that ``handoff teams-package`` does not load botbuilder.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channel import TeamsChatChannel
    from .mount import MESSAGES_PATH, TeamsIntegration, mount_teams
    from .package import build_teams_package
    from .renderer import MAX_CARD_BYTES, render_card
    from .sending import SendPolicy

_EXPORTS = {
    "MAX_CARD_BYTES": ".renderer",
    "MESSAGES_PATH": ".mount",
    "SendPolicy": ".sending",
    "TeamsChatChannel": ".channel",
    "TeamsIntegration": ".mount",
    "build_teams_package": ".package",
    "mount_teams": ".mount",
    "render_card": ".renderer",
}

__all__ = [
    "MAX_CARD_BYTES",
    "MESSAGES_PATH",
    "SendPolicy",
    "TeamsChatChannel",
    "TeamsIntegration",
    "build_teams_package",
    "mount_teams",
    "render_card",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
