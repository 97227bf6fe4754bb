"""Subscriptions and their filters: which conversations an event goes to.

Subscriptions come from the YAML file (each names a configured channel, which may be on Slack,
Teams or both) and from chat (each bound to the conversation it was made in). Every filter narrows;
an empty filter matches everything. Glob patterns (``*``, ``?``) work for pipelines, branches,
stages, environments, models and tag values; text filters are regular expressions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.config import Settings, SubscriptionSettings
from bot.events import DomainEvent
from bot.records import ConversationAddress, StoredSubscription
from bot.text_patterns import TextPattern, compile_text_pattern

# Kinds whose events have no success or failure: an outcome filter does not apply to them.
KINDS_WITHOUT_OUTCOME = frozenset({"model_registered", "model_deployed", "data_arrived", "code_pushed"})

# What a channel gets when someone subscribes it without filters: failures, approvals, new models.
DEFAULT_FILTERS: dict[str, Any] = {
    "events": ["run", "approval", "model_registered", "training_run", "data_drift"],
    "outcomes": ["failed", "pending"],
}


def _glob_any(value: str | None, patterns: Sequence[str]) -> bool:
    if not patterns:
        return True
    if value is None:
        return False
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


@dataclass(frozen=True)
class Filters:
    """The conditions of one subscription."""

    events: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    actors_include: tuple[str, ...] = ()
    actors_exclude: tuple[str, ...] = ()
    text_include: tuple[TextPattern, ...] = ()
    text_exclude: tuple[TextPattern, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Filters:
        """Build from a subscription's settings or a stored subscription's JSON."""

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key) or ()
            return (value,) if isinstance(value, str) else tuple(str(v) for v in value)

        def patterns(key: str) -> tuple[TextPattern, ...]:
            return tuple(compile_text_pattern(p) for p in strings(key))

        return cls(
            events=strings("events"),
            outcomes=strings("outcomes"),
            projects=strings("projects"),
            pipelines=strings("pipelines"),
            branches=strings("branches"),
            stages=strings("stages"),
            environments=strings("environments"),
            models=strings("models"),
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
            actors_include=tuple(a.lower() for a in strings("actors_include")),
            actors_exclude=tuple(a.lower() for a in strings("actors_exclude")),
            text_include=patterns("text_include"),
            text_exclude=patterns("text_exclude"),
        )

    def matches(self, event: DomainEvent) -> bool:
        if self.events and event.kind not in self.events:
            return False
        outcome_applies = self.outcomes and "any" not in self.outcomes and event.kind not in KINDS_WITHOUT_OUTCOME
        if outcome_applies and event.outcome not in self.outcomes:
            return False
        checks = (
            (event.project, self.projects),
            (event.pipeline, self.pipelines),
            (event.branch, self.branches),
            (event.stage, self.stages),
            (event.environment, self.environments),
            (event.model, self.models),
        )
        if not all(_glob_any(value, patterns) for value, patterns in checks):
            return False
        for key, pattern in self.tags.items():
            if not _glob_any(event.tags.get(key), [pattern]):
                return False
        person = event.actor
        actor = {n.lower() for n in (person.email, person.name, person.id) if n} if person else set()
        if self.actors_include and not actor & set(self.actors_include):
            return False
        if actor & set(self.actors_exclude):
            return False
        if self.text_include and not any(p.search(event.text) for p in self.text_include):
            return False
        return not any(p.search(event.text) for p in self.text_exclude)


@dataclass(frozen=True)
class Subscription:
    """Filters and where matching events go."""

    targets: tuple[ConversationAddress, ...]
    filters: Filters
    muted_until: datetime | None = None
    id: int | None = None

    def wants(self, event: DomainEvent, now: datetime) -> bool:
        if self.muted_until is not None and now < self.muted_until:
            return False
        return self.filters.matches(event)


def channel_addresses(settings: Settings, channel: str) -> tuple[ConversationAddress, ...]:
    """The conversations a configured channel name stands for."""
    configured = settings.channels[channel]
    found = []
    if configured.slack:
        found.append(ConversationAddress("slack", configured.slack))
    if configured.teams:
        found.append(ConversationAddress("teams", configured.teams))
    return tuple(found)


def configured_subscriptions(settings: Settings) -> list[Subscription]:
    def build(entry: SubscriptionSettings) -> Subscription:
        data = entry.model_dump(exclude={"channel"})
        return Subscription(channel_addresses(settings, entry.channel), Filters.from_mapping(data))

    return [build(entry) for entry in settings.subscriptions]


def stored_subscription(record: StoredSubscription) -> Subscription:
    return Subscription((record.conversation,), Filters.from_mapping(record.filters), record.muted_until, record.id)


def route(event: DomainEvent, subscriptions: Iterable[Subscription], now: datetime) -> set[ConversationAddress]:
    """Every conversation that some subscription wants this event in."""
    targets: set[ConversationAddress] = set()
    for subscription in subscriptions:
        if subscription.wants(event, now):
            targets.update(subscription.targets)
    return targets
