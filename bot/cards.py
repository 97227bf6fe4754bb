"""The neutral message model: what a card says, independent of Slack's Block Kit or Teams' Adaptive Cards.

Renderers in the adapters turn a :class:`Card` into each platform's format. A card round-trips
through JSON (:meth:`Card.to_json` / :meth:`Card.from_json`), because deliveries are stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.jsonable import as_json


class Status(StrEnum):
    """Where the thing a card shows stands; renderers map it to an emoji or a colour."""

    INFO = "info"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    PARTIAL = "partially_succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    WARNING = "warning"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def going(self) -> bool:
        """Whether the thing is still on its way (queued or running)."""
        return self in (Status.QUEUED, Status.RUNNING)

    @property
    def alerts(self) -> bool:
        """Whether something went wrong (a failure, a breaking change): such a thread reply is also shown in
        the channel where its subscriptions broadcast."""
        return self in _ALERTS


# A stage in one of these has yet to run its course; in any other (succeeded, with issues, failed, canceled,
# skipped, rejected, or completed with a result no status names) it has run it.
_UNFINISHED = frozenset({Status.QUEUED, Status.RUNNING, Status.WAITING})
_ALERTS = frozenset({Status.FAILED, Status.PARTIAL, Status.WARNING})


@dataclass(frozen=True)
class Fact:
    """A labelled value: ``Pipeline: integrate-app-y``."""

    label: str
    value: str


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Step:
    """One stage of a run, shown as progress on the card."""

    name: str
    status: Status


@dataclass(frozen=True)
class Mention:
    """Someone the card calls on (the person whose run failed), named as the services name them.

    Renderers @mention the person by ``user_id`` on its platform, else where the platform knows the email;
    elsewhere the name is enough (an empty name: the card's text says who is meant).

    Args:
        name: how the card may name them to people (never a raw chat id).
        email: their email, by which both platforms find people ("" when unknown).
        user_id: their chat id as the configuration names people: ``slack:<user id>``, ``teams:<id>`` or
            ``aad:<object id>`` (Teams); "" when they are known by email only.
    """

    name: str
    email: str = ""
    user_id: str = ""

    def id_on(self, platform: str) -> str | None:
        """The person's user id on ``platform`` (``slack`` or ``teams``, which takes AAD object ids too), when
        the card names them by one there."""
        prefix, _, user_id = self.user_id.partition(":")
        platforms = {"slack": "slack", "teams": "teams", "aad": "teams"}
        return user_id if user_id and platforms.get(prefix.lower()) == platform else None


@dataclass(frozen=True)
class Action:
    """A button. ``action_id`` is what the click reports back (``approve``, ``reject``, ``confirm``…);
    ``value`` carries what the handler needs (a gate id), never anything secret.
    """

    action_id: str
    label: str
    value: dict[str, str] = field(default_factory=dict)
    style: str | None = None  # "primary" | "danger"
    needs_comment: bool = False
    comment_prompt: str = ""


@dataclass(frozen=True)
class Card:
    """A card as the core means it; the same on every platform."""

    title: str
    status: Status = Status.INFO
    summary: str = ""
    facts: tuple[Fact, ...] = ()
    steps: tuple[Step, ...] = ()
    links: tuple[Link, ...] = ()
    actions: tuple[Action, ...] = ()
    context: str = ""
    # people who may press the buttons (platform user ids); others see the status without them
    action_audience: tuple[str, ...] = ()
    mentions: tuple[Mention, ...] = ()

    @property
    def text(self) -> str:
        """A plain-text rendering, for notifications and platforms' fallback text."""
        # a title that starts with the status says it already ("Approved in Teams by Carol Diaz")
        said = self.title.lower().startswith(self.status.label.lower())
        first = self.title if said else f"{self.status.label}: {self.title}"
        if not self.summary:
            return first
        return f"{first} {self.summary}" if first.endswith((".", "?", "!", ":")) else f"{first}. {self.summary}"

    def naming_only(self) -> Card:
        """The card for a conversation whose subscriptions turned mentions off: the people it calls on are
        named in its text, not @mentioned (a person a fact names already, ``Requested by``, is not named
        again)."""
        if not self.mentions:
            return self
        in_facts = {fact.value for fact in self.facts}
        named = dict.fromkeys(m.name or m.email for m in self.mentions if m.name or m.email)
        unnamed = [name for name in named if name not in in_facts]
        if not unnamed:
            return replace(self, mentions=())
        names = ", ".join(unnamed)
        summary = f"{self.summary}\n\nFor: {names}" if self.summary else f"For: {names}"
        return replace(self, summary=summary, mentions=())

    def compacted(self) -> Card:
        """The card for a conversation that asked for compact cards: its title, status, summary, links and
        buttons, without the facts, the stage list and the context line (the stages shown as a count)."""
        summary = self.summary
        if not summary and self.steps:
            done = sum(1 for step in self.steps if step.status not in _UNFINISHED)
            summary = f"{done} of {len(self.steps)} stages done"
        return replace(self, summary=summary, facts=(), steps=(), context="")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = as_json(self)
        for mention in data["mentions"]:  # (stored as before for people known by email only)
            if not mention["user_id"]:
                del mention["user_id"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Card:
        return cls(
            title=str(data["title"]),
            status=Status(data.get("status", Status.INFO)),
            summary=str(data.get("summary", "")),
            facts=tuple(Fact(**f) for f in data.get("facts", ())),
            steps=tuple(Step(s["name"], Status(s["status"])) for s in data.get("steps", ())),
            links=tuple(Link(**link) for link in data.get("links", ())),
            actions=tuple(
                Action(
                    action_id=a["action_id"],
                    label=a["label"],
                    value=dict(a.get("value", {})),
                    style=a.get("style"),
                    needs_comment=bool(a.get("needs_comment", False)),
                    comment_prompt=str(a.get("comment_prompt", "")),
                )
                for a in data.get("actions", ())
            ),
            context=str(data.get("context", "")),
            action_audience=tuple(data.get("action_audience", ())),
            mentions=tuple(
                Mention(str(m["name"]), str(m.get("email", "")), str(m.get("user_id", "")))
                for m in data.get("mentions", ())
            ),
        )
