"""The card each person sees on a Teams message, where it differs from the one everyone sees.

Teams shows a person their own version of an Adaptive Card in two cases, both emulated here:

- the card has a ``refresh`` whose ``userIds`` name them: their Teams client asks the bot for it with an
  ``adaptiveCard/action`` invoke (verb ``refresh``, trigger ``automatic``) whenever the message changes;
- they clicked an ``Action.Execute`` and the bot answered with a card: it replaces the message's card for them
  until the message changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from adapters.console.people import ConsoleUser
from adapters.emulators.botframework.emulator import BotFrameworkEmulator
from adapters.emulators.botframework.state import Message

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
REFRESH_TIMEOUT = 10.0

log = logging.getLogger("handoff.console.teams")


def invoke_card(body: Any) -> dict[str, Any] | None:
    """The card of an ``AdaptiveCardInvokeResponse`` body, if it carries one."""
    if isinstance(body, dict) and body.get("type") == ADAPTIVE_CARD and isinstance(body.get("value"), dict):
        card: dict[str, Any] = body["value"]
        return card
    return None


def refresh_for(card: dict[str, Any], user: ConsoleUser) -> dict[str, Any] | None:
    """The card's refresh action if Teams would run it automatically for ``user``."""
    refresh = card.get("refresh")
    if not isinstance(refresh, dict) or not isinstance(refresh.get("action"), dict):
        return None
    ids = {str(i).lower() for i in refresh.get("userIds") or [] if isinstance(i, str)}
    mine = {i.lower() for i in (user.teams_id, user.teams_aad_id) if i}
    action: dict[str, Any] = refresh["action"]
    return action if ids & mine and action.get("type") == "Action.Execute" else None


class PersonalCards:
    """Per person and message, the card Teams shows them instead of the shared one.

    Args:
        teams: the emulator that sends the refresh invokes to the bot.
        changed: called when a personal card arrives (the page should be told).
    """

    def __init__(self, teams: BotFrameworkEmulator, changed: Callable[[], None]) -> None:
        self.teams = teams
        self.changed = changed
        # (message id, person key) -> (message version the card belongs to, the card or None while unknown)
        self._cards: dict[tuple[str, str], tuple[int, dict[str, Any] | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def card(self, msg: Message, shared: dict[str, Any], user: ConsoleUser) -> tuple[dict[str, Any], bool]:
        """The card ``user`` sees in place of ``shared`` (the message's first card), and whether it is theirs.

        Starts a refresh for them when Teams would; the shared card stands in until the bot answers.
        """
        version = len(msg.versions)
        known = self._cards.get((msg.id, user.key))
        if known is not None and known[0] == version:
            return (known[1], True) if known[1] is not None else (shared, False)
        action = refresh_for(shared, user)
        if action is not None and user.teams_id:
            self._cards[(msg.id, user.key)] = (version, None)
            task = asyncio.get_running_loop().create_task(self._refresh(msg.id, version, action, user))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return shared, False

    def remember(self, msg: Message, user: ConsoleUser, card: dict[str, Any]) -> None:
        """The card the bot answered ``user``'s click with; shown to them until the message changes."""
        self._cards[(msg.id, user.key)] = (len(msg.versions), card)
        self.changed()

    async def close(self) -> None:
        """Cancel the refreshes still under way."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _refresh(self, message_id: str, version: int, action: dict[str, Any], user: ConsoleUser) -> None:
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        try:
            response = await asyncio.wait_for(
                self.teams.click_action(
                    message_id,
                    str(action.get("verb") or "refresh"),
                    data,
                    user=user.key,
                    action_id=action.get("id") if isinstance(action.get("id"), str) else None,
                    trigger="automatic",
                ),
                REFRESH_TIMEOUT,
            )
        except Exception as error:  # the bot is not there or failed: everyone's card stands in
            log.info("refreshing card %s for %s failed: %s", message_id, user.key, error or type(error).__name__)
            return
        card = invoke_card(response.body) if response.ok else None
        if card is None:
            log.info("the bot answered the refresh of %s for %s with %s", message_id, user.key, response.status)
            return
        current = self._cards.get((message_id, user.key))
        if current is not None and current[0] == version:
            self._cards[(message_id, user.key)] = (version, card)
            self.changed()
