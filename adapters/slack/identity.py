"""Who clicked or typed: a Slack user id becomes a :class:`~bot.interactions.ChatUser` with an email.

The core's policy matches people by email first (``users:read.email``), then by ``slack:<id>``. Lookups
use ``users.info`` and are cached briefly; when Slack cannot answer, the user is still known by id, so
policy falls back to that rather than failing the request. The other way round, a card's mention names
a person by email, and ``users.lookupByEmail`` gives their id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock, SystemClock
from bot.interactions import ChatUser

log = logging.getLogger("handoff.slack.identity")


class UserDirectory:
    """Resolves Slack users through ``users.info``, with a small time-limited cache.

    Args:
        ttl: seconds a resolved user is reused (a changed email is seen after at most this long).
        max_entries: how many users are kept.
        timeout: seconds to wait for ``users.info`` before going on with the id alone.
        clock: the time source.
    """

    def __init__(
        self, ttl: float = 300.0, max_entries: int = 2000, timeout: float = 5.0, clock: Clock | None = None
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.timeout = timeout
        self.clock = clock or SystemClock()
        self._cache: OrderedDict[tuple[str, str], tuple[float, ChatUser]] = OrderedDict()
        self._ids: OrderedDict[tuple[str, str], tuple[float, str | None]] = OrderedDict()

    async def user(self, client: AsyncWebClient, user_id: str, team_id: str | None = None, name: str = "") -> ChatUser:
        """The person behind ``user_id`` in ``team_id``; never raises."""
        key = (team_id or "", user_id)
        now = self.clock.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            self._cache.move_to_end(key)
            return cached[1]
        found = await self._lookup(client, user_id, team_id, name)
        if found is None:
            return ChatUser(platform="slack", user_id=user_id, name=name, workspace_id=team_id)
        self._cache[key] = (now, found)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return found

    async def id_for_email(self, client: AsyncWebClient, email: str, team_id: str | None = None) -> str | None:
        """The id of the member of ``team_id`` whose email is ``email`` (``users.lookupByEmail``); None when
        nobody there has it, or Slack cannot say now. Never raises; answers (none included) are cached."""
        key = (team_id or "", email.lower())
        now = self.clock.monotonic()
        cached = self._ids.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            response = await asyncio.wait_for(client.users_lookupByEmail(email=email), self.timeout)
        except SlackApiError as exc:
            if _error_code(exc) != "users_not_found":
                log.warning("users.lookupByEmail failed: %s", _error_code(exc))
                return None  # (not cached: asked again next time)
            response = None
        except Exception as exc:  # timeouts and connection errors: no mention this time
            log.warning("users.lookupByEmail failed: %s", type(exc).__name__)
            return None
        user: Any = response.get("user") if response is not None else None
        found = str(user["id"]) if isinstance(user, dict) and user.get("id") else None
        self._ids[key] = (now, found)
        self._ids.move_to_end(key)
        while len(self._ids) > self.max_entries:
            self._ids.popitem(last=False)
        return found

    def forget(self, team_id: str | None = None) -> None:
        """Drop cached users (of one workspace, or all)."""
        for key in [k for k in self._cache if team_id is None or k[0] == team_id]:
            del self._cache[key]
        for key in [k for k in self._ids if team_id is None or k[0] == team_id]:
            del self._ids[key]

    async def _lookup(self, client: AsyncWebClient, user_id: str, team_id: str | None, name: str) -> ChatUser | None:
        try:
            response = await asyncio.wait_for(client.users_info(user=user_id), self.timeout)
        except SlackApiError as exc:
            log.warning("users.info failed for %s: %s", user_id, _error_code(exc))
            return None
        except Exception as exc:  # timeouts and connection errors: go on with the id
            log.warning("users.info failed for %s: %s", user_id, type(exc).__name__)
            return None
        data: Any = response.get("user") or {}
        if not isinstance(data, dict):
            return None
        raw_profile = data.get("profile")
        profile: dict[str, Any] = raw_profile if isinstance(raw_profile, dict) else {}
        email = profile.get("email") or None
        display = profile.get("real_name") or data.get("real_name") or data.get("name") or name
        return ChatUser(
            platform="slack",
            user_id=user_id,
            name=str(display or ""),
            email=str(email) if email else None,
            workspace_id=team_id or str(data.get("team_id") or "") or None,  # as without users.info: stable
            time_zone=str(data["tz"]) if data.get("tz") else None,
        )


def _error_code(exc: SlackApiError) -> str:
    response = getattr(exc, "response", None)
    try:
        return str(response.get("error")) if response is not None else "unknown"
    except Exception:
        return "unknown"
