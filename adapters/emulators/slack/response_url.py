"""The ``response_url`` endpoint handed out with slash commands and interactions.

A POST carries ``{"text", "blocks", "response_type", "replace_original", "delete_original", "thread_ts"}``:
``delete_original``/``replace_original`` act on the message the interaction came from (ephemeral ones
included); otherwise ``response_type: "in_channel"`` posts to the channel and anything else is an
ephemeral message to the user. Each URL works 5 times within 30 minutes.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .state import ResponseUrl, SlackState


class ResponseUrls:
    """Serves every ``response_url`` of one :class:`SlackState` at ``/hooks/{kind}/...``."""

    def __init__(self, state: SlackState) -> None:
        self.state = state
        self.world = state.world

    def register(self, app: web.Application) -> None:
        app.router.add_post("/hooks/{kind}/{team}/{serial}/{secret}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        info = request.match_info
        url = self.state.response_urls.get(f"{info['kind']}/{info['team']}/{info['serial']}/{info['secret']}")
        if url is None:
            return _error(404, "invalid_url")
        limits = self.world.limits
        if self.state.clock.monotonic() - url.issued_at > limits.response_url_ttl_seconds:
            return _error(404, "expired_url")
        if url.uses >= limits.response_url_max_uses:
            return _error(404, "used_url")
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return _error(400, "invalid_payload")
        if not isinstance(body, dict):
            return _error(400, "invalid_payload")
        url.uses += 1
        error = self.apply(url, body)
        self.state.changed()  # ephemeral messages are replaced or deleted in place
        if error:
            return _error(404 if error.endswith("not_found") else 400, error)
        return web.json_response({"ok": True})

    def apply(self, url: ResponseUrl, body: dict[str, Any]) -> str | None:
        """Carry out one response; returns an error code or None."""
        if _flag(body.get("delete_original")):
            return self._delete_original(url)
        text = str(body.get("text") or "")
        blocks = body.get("blocks")
        if not text and not blocks:
            return "no_text"
        if _flag(body.get("replace_original")):
            return self._replace_original(url, text, blocks)
        channel = self.state.channel(url.channel)
        thread_ts = body.get("thread_ts")
        if body.get("response_type") == "in_channel":
            bot = self.world
            try:
                self.state.post(
                    channel,
                    user=bot.bot_user_id,
                    text=text,
                    blocks=blocks,
                    bot_id=bot.bot_id,
                    thread_ts=thread_ts,
                )
            except KeyError:
                return "thread_not_found"
            return None
        self.state.post_ephemeral(channel, url.user, text=text, blocks=blocks, thread_ts=thread_ts)
        return None

    def _delete_original(self, url: ResponseUrl) -> str | None:
        if url.message_ts is None:
            return "message_not_found"
        if url.is_ephemeral:
            ephemeral = self.state.find_ephemeral(url.channel, url.message_ts)
            if ephemeral is None:
                return "message_not_found"
            ephemeral.deleted = True
            return None
        msg = self.state.find(url.channel, url.message_ts)
        if msg is None:
            return "message_not_found"
        self.state.delete(msg)
        return None

    def _replace_original(self, url: ResponseUrl, text: str, blocks: Any) -> str | None:
        if url.message_ts is None:
            return "message_not_found"
        if url.is_ephemeral:
            ephemeral = self.state.find_ephemeral(url.channel, url.message_ts)
            if ephemeral is None:
                return "message_not_found"
            ephemeral.versions.append({"text": ephemeral.text, "blocks": ephemeral.blocks})
            ephemeral.text, ephemeral.blocks = text, blocks
            return None
        msg = self.state.find(url.channel, url.message_ts)
        if msg is None or msg.deleted:
            return "message_not_found"
        self.state.update(msg, text=text, blocks=blocks or [])
        return None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _error(status: int, error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status)
