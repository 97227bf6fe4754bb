"""The seeded Teams world: tenant, bot, users, teams and their channels, limits.

It is read from the ``teams`` section of a world file (see ``default_world.yaml`` beside this module).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

SECTION = "teams"

Windows = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class TeamsUser:
    """A person in the tenant, as Teams describes them (``TeamsChannelAccount``)."""

    key: str
    id: str
    aad_object_id: str
    name: str
    given_name: str = ""
    surname: str = ""
    email: str = ""
    user_principal_name: str = ""
    role: str = "user"
    time_zone: str = "Etc/UTC"  # the IANA zone of the person's device, which their activities name

    @property
    def personal_conversation_id(self) -> str:
        """The id of this user's 1:1 chat with the bot."""
        return f"a:1personal-{self.key}"

    def account(self) -> dict[str, Any]:
        """The short ``ChannelAccount`` Teams puts in ``from`` and ``recipient``."""
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}

    def teams_account(self, tenant_id: str) -> dict[str, Any]:
        """The full ``TeamsChannelAccount`` the members routes answer."""
        return {
            "id": self.id,
            "name": self.name,
            "givenName": self.given_name,
            "surname": self.surname,
            "email": self.email,
            "userPrincipalName": self.user_principal_name or self.email,
            "aadObjectId": self.aad_object_id,
            "tenantId": tenant_id,
            "userRole": self.role,
        }


@dataclass(frozen=True)
class TeamsChannel:
    """A channel of a team. The General channel's id equals the team id."""

    id: str
    name: str
    team_id: str

    @property
    def is_general(self) -> bool:
        return self.id == self.team_id


@dataclass(frozen=True)
class Team:
    """A team, its channels and its members (user keys)."""

    id: str
    name: str
    aad_group_id: str
    channels: tuple[TeamsChannel, ...]
    members: tuple[str, ...]

    @property
    def general(self) -> TeamsChannel:
        return next((c for c in self.channels if c.is_general), self.channels[0])


@dataclass(frozen=True)
class Limits:
    """Service limits the emulator enforces; windows are ``(count, seconds)`` per conversation, except
    ``app``: every request of the bot in its tenant, whatever the conversation."""

    max_message_bytes: int = 102_400
    """Above this a send or update is refused with 413; counted on the request's JSON as text, in UTF-16 bytes."""
    send: Windows = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
    read: Windows = ((14, 1.0), (16, 2.0), (120, 30.0), (3600, 3600.0))
    members_unpaged: Windows = ((5, 60.0),)
    app: Windows = ((30, 1.0),)


@dataclass(frozen=True)
class TeamsWorld:
    """Everything the Bot Framework emulator is seeded with."""

    tenant_id: str
    bot_app_id: str
    bot_name: str
    users: tuple[TeamsUser, ...]
    teams: tuple[Team, ...]
    limits: Limits = field(default_factory=Limits)

    @property
    def bot_id(self) -> str:
        """The bot's MRI, ``28:<app id>``."""
        return f"28:{self.bot_app_id}"

    def bot_account(self) -> dict[str, Any]:
        return {"id": self.bot_id, "name": self.bot_name}

    def user(self, ref: str) -> TeamsUser:
        """A user by key, MRI, AAD object id, email or UPN; KeyError if unknown."""
        for user in self.users:
            if ref in (user.key, user.id, user.aad_object_id, user.email, user.user_principal_name):
                return user
        raise KeyError(f"no Teams user {ref!r} in the world")

    def team(self, ref: str | None = None) -> Team:
        """A team by id, name or AAD group id (the first team if ``ref`` is None)."""
        for team in self.teams:
            if ref is None or ref in (team.id, team.name, team.aad_group_id):
                return team
        raise KeyError(f"no team {ref!r} in the world")

    def channel(self, ref: str, team: str | None = None) -> TeamsChannel:
        """A channel by id or name (optionally within one team)."""
        for t in self.teams:
            if team is not None and team not in (t.id, t.name):
                continue
            for channel in t.channels:
                if ref in (channel.id, channel.name):
                    return channel
        raise KeyError(f"no channel {ref!r} in the world")


def default_world() -> dict[str, Any]:
    """The shipped ``teams`` section, as a plain dict."""
    text = resources.files(__package__).joinpath("default_world.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)[SECTION]
    return data


def load_world(section: Mapping[str, Any] | None = None) -> TeamsWorld:
    """Build a :class:`TeamsWorld` from the ``teams`` section (or the default one).

    A whole world file (a mapping with a ``teams`` key) is accepted too.
    """
    data: Mapping[str, Any] = default_world() if section is None else section
    if SECTION in data and isinstance(data[SECTION], Mapping):
        data = data[SECTION]
    bot = data.get("bot", {})
    users = tuple(_user(u) for u in data.get("users", []))
    teams = tuple(_team(t) for t in data.get("teams", []))
    return TeamsWorld(
        tenant_id=str(data["tenant_id"]),
        bot_app_id=str(bot.get("app_id", "")),
        bot_name=str(bot.get("name", "Handoff")),
        users=users,
        teams=teams,
        limits=_limits(data.get("limits", {})),
    )


def _user(data: Mapping[str, Any]) -> TeamsUser:
    return TeamsUser(
        key=str(data["key"]),
        id=str(data["id"]),
        aad_object_id=str(data["aad_object_id"]),
        name=str(data.get("name", data["key"])),
        given_name=str(data.get("given_name", "")),
        surname=str(data.get("surname", "")),
        email=str(data.get("email", "")),
        user_principal_name=str(data.get("user_principal_name", data.get("email", ""))),
        role=str(data.get("role", "user")),
        time_zone=str(data.get("time_zone", "Etc/UTC")),
    )


def _team(data: Mapping[str, Any]) -> Team:
    team_id = str(data["id"])
    channels = tuple(
        TeamsChannel(id=str(c["id"]), name=str(c["name"]), team_id=team_id) for c in data.get("channels", [])
    )
    if not any(c.is_general for c in channels):
        channels = (TeamsChannel(id=team_id, name="General", team_id=team_id), *channels)
    return Team(
        id=team_id,
        name=str(data["name"]),
        aad_group_id=str(data.get("aad_group_id", "")),
        channels=channels,
        members=tuple(str(m) for m in data.get("members", [])),
    )


def _windows(value: Any, default: Windows) -> Windows:
    if value is None:
        return default
    return tuple((int(count), float(seconds)) for count, seconds in value)


def _limits(data: Mapping[str, Any]) -> Limits:
    base = Limits()
    return Limits(
        max_message_bytes=int(data.get("max_message_bytes", base.max_message_bytes)),
        send=_windows(data.get("send"), base.send),
        read=_windows(data.get("read"), base.read),
        members_unpaged=_windows(data.get("members_unpaged"), base.members_unpaged),
        app=_windows(data.get("app"), base.app),
    )
