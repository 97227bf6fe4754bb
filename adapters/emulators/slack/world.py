"""The seeded Slack workspace: team, app, bot user, tokens, signing secret, users, channels, limits.

It is read from the ``slack`` section of a world file (see ``default_world.yaml`` beside this module).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

SECTION = "slack"
BOT_MEMBER = "bot"


@dataclass(frozen=True)
class SlackUser:
    """A person in the workspace."""

    key: str
    id: str
    name: str
    real_name: str
    email: str
    tz: str = "UTC"


@dataclass(frozen=True)
class SlackChannel:
    """A channel and the user ids of its members (the bot user included when it has joined)."""

    id: str
    name: str
    members: frozenset[str]
    is_private: bool = False


@dataclass(frozen=True)
class Limits:
    """Service limits the emulator enforces."""

    post_message_per_second: float = 1.0
    post_message_burst: int = 3
    update_per_minute: float = 50.0
    update_burst: int = 50
    max_text_chars: int = 40_000
    max_blocks: int = 50
    trigger_id_ttl_seconds: float = 3.0
    response_url_max_uses: int = 5
    response_url_ttl_seconds: float = 1800.0
    history_default_limit: int = 100
    history_max_limit: int = 999
    replies_default_limit: int = 1000
    replies_max_limit: int = 1000


@dataclass(frozen=True)
class SlackWorld:
    """Everything the Slack emulator is seeded with."""

    team_id: str
    team_domain: str
    team_name: str
    enterprise_id: str | None
    enterprise_name: str | None
    app_id: str
    bot_user_id: str
    bot_id: str
    bot_name: str
    bot_tokens: frozenset[str]
    signing_secret: str
    verification_token: str
    users: tuple[SlackUser, ...]
    channels: tuple[SlackChannel, ...]
    limits: Limits = field(default_factory=Limits)
    # the bot token's scopes, which Web API answers report in ``X-OAuth-Scopes`` as Slack's do; reading a
    # conversation's history needs the scope of its kind (none listed: every scope is granted)
    bot_scopes: tuple[str, ...] = ()

    @property
    def bot_token(self) -> str:
        """A token the Web API accepts (the first configured)."""
        return sorted(self.bot_tokens)[0]

    def user(self, ref: str) -> SlackUser:
        """A user by key, id, name or email; KeyError if unknown."""
        for user in self.users:
            if ref in (user.key, user.id, user.name, user.email):
                return user
        raise KeyError(f"no Slack user {ref!r} in the world")

    def channel(self, ref: str) -> SlackChannel:
        """A channel by id or name (with or without ``#``); KeyError if unknown."""
        name = ref.removeprefix("#")
        for channel in self.channels:
            if ref == channel.id or name == channel.name:
                return channel
        raise KeyError(f"no Slack channel {ref!r} in the world")


def default_world() -> dict[str, Any]:
    """The shipped ``slack`` section, as a plain dict."""
    text = resources.files(__package__).joinpath("default_world.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)[SECTION]
    return data


def load_world(section: Mapping[str, Any] | None = None) -> SlackWorld:
    """Build a :class:`SlackWorld` from the ``slack`` section (or the default one).

    A whole world file (a mapping with a ``slack`` key) is accepted too.
    """
    data: Mapping[str, Any] = default_world() if section is None else section
    if SECTION in data and isinstance(data[SECTION], Mapping):
        data = data[SECTION]
    team = data.get("team", {})
    bot = data.get("bot", {})
    enterprise = data.get("enterprise") or {}
    users = tuple(_user(u) for u in data.get("users", []))
    by_key = {u.key: u.id for u in users}
    by_key[BOT_MEMBER] = str(bot.get("user_id", "U0BOT"))
    return SlackWorld(
        team_id=str(team.get("id", "T0")),
        team_domain=str(team.get("domain", "example")),
        team_name=str(team.get("name", "Example")),
        enterprise_id=str(enterprise["id"]) if enterprise.get("id") else None,
        enterprise_name=str(enterprise.get("name", "")) if enterprise.get("id") else None,
        app_id=str(data.get("app_id", "A0")),
        bot_user_id=by_key[BOT_MEMBER],
        bot_id=str(bot.get("bot_id", "B0")),
        bot_name=str(bot.get("name", "handoff")),
        bot_tokens=frozenset(str(t) for t in data.get("bot_tokens", [])),
        signing_secret=str(data.get("signing_secret", "")),
        verification_token=str(data.get("verification_token", "")),
        users=users,
        channels=tuple(_channel(c, by_key) for c in data.get("channels", [])),
        limits=_limits(data.get("limits", {})),
        bot_scopes=tuple(str(scope) for scope in data.get("bot_scopes", [])),
    )


def _user(data: Mapping[str, Any]) -> SlackUser:
    return SlackUser(
        key=str(data["key"]),
        id=str(data["id"]),
        name=str(data.get("name", data["key"])),
        real_name=str(data.get("real_name", data["key"])),
        email=str(data.get("email", "")),
        tz=str(data.get("tz", "UTC")),
    )


def _channel(data: Mapping[str, Any], by_key: Mapping[str, str]) -> SlackChannel:
    members = frozenset(by_key.get(str(m), str(m)) for m in data.get("members", []))
    return SlackChannel(
        id=str(data["id"]),
        name=str(data["name"]).removeprefix("#"),
        members=members,
        is_private=bool(data.get("is_private", False)),
    )


def _limits(data: Mapping[str, Any]) -> Limits:
    base = Limits()
    return Limits(
        post_message_per_second=float(data.get("post_message_per_second", base.post_message_per_second)),
        post_message_burst=int(data.get("post_message_burst", base.post_message_burst)),
        update_per_minute=float(data.get("update_per_minute", base.update_per_minute)),
        update_burst=int(data.get("update_burst", base.update_burst)),
        max_text_chars=int(data.get("max_text_chars", base.max_text_chars)),
        max_blocks=int(data.get("max_blocks", base.max_blocks)),
        trigger_id_ttl_seconds=float(data.get("trigger_id_ttl_seconds", base.trigger_id_ttl_seconds)),
        response_url_max_uses=int(data.get("response_url_max_uses", base.response_url_max_uses)),
        response_url_ttl_seconds=float(data.get("response_url_ttl_seconds", base.response_url_ttl_seconds)),
        history_default_limit=int(data.get("history_default_limit", base.history_default_limit)),
        history_max_limit=int(data.get("history_max_limit", base.history_max_limit)),
        replies_default_limit=int(data.get("replies_default_limit", base.replies_default_limit)),
        replies_max_limit=int(data.get("replies_max_limit", base.replies_max_limit)),
    )
