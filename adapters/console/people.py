"""Who the console acts as: the people of the emulated worlds, by key (``alice``, ``bob``, ``carol``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.emulators.suite import EmulatorSuite


@dataclass(frozen=True)
class ConsoleUser:
    """A person the console can act as, with their account on each platform (None: not on it)."""

    key: str
    name: str
    role: str
    email: str
    slack_id: str | None
    teams_id: str | None
    teams_aad_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "role": self.role,
            "email": self.email,
            "slack": self.slack_id is not None,
            "teams": self.teams_id is not None,
        }


class People:
    """The people the "you are" selector offers, the first being the default."""

    def __init__(self, users: Sequence[ConsoleUser]) -> None:
        if not users:
            raise ValueError("the console needs at least one person to act as")
        self._users = {u.key: u for u in users}

    def __iter__(self) -> Iterator[ConsoleUser]:
        return iter(self._users.values())

    @property
    def default(self) -> ConsoleUser:
        return next(iter(self._users.values()))

    def get(self, key: str) -> ConsoleUser:
        """A person by key; KeyError if the selector does not offer them."""
        return self._users[key]


def people_of(suite: EmulatorSuite, keys: Sequence[str] | None = None) -> People:
    """The people of the Slack and Teams worlds (``keys`` picks and orders them), with their Azure DevOps role.

    Raises:
        ValueError: a key names nobody in either world.
    """
    slack = {u.key: u for u in suite.slack.world.users}
    teams = {u.key: u for u in suite.teams.world.users}
    chosen = list(keys) if keys is not None else list(dict.fromkeys([*slack, *teams]))
    unknown = [k for k in chosen if k not in slack and k not in teams]
    if unknown:
        raise ValueError(f"no Slack or Teams user {', '.join(map(repr, unknown))} in the emulated worlds")
    roles = {i.unique_name.lower(): i.role for i in suite.ado.world.identities}
    users = []
    for key in chosen:
        s, t = slack.get(key), teams.get(key)
        email = (s.email if s else "") or (t.email if t else "")
        name = (s.real_name if s else "") or (t.name if t else key)
        users.append(
            ConsoleUser(
                key=key,
                name=name,
                role=roles.get(email.lower(), ""),
                email=email,
                slack_id=s.id if s else None,
                teams_id=t.id if t else None,
                teams_aad_id=t.aad_object_id if t else None,
            )
        )
    return People(users)
