"""Which service-hook subscriptions Handoff needs, which it has, and what to change: pure planning.

Handoff's subscriptions are Web Hooks (``webHooks`` / ``httpRequest``) on ``<public_url>/hooks/azure-devops``,
one per project and event type, for the event types its routing uses (:data:`KIND_EVENT_TYPES`).

A subscription is Handoff's own when its consumer URL carries the :data:`MARKER` query parameter. Its value
is a fingerprint of everything the subscription says (project, event type, resource version, URL, the
credentials it sends), so a changed configuration shows up as a different fingerprint even though Azure
DevOps never returns the password or header value it stores. The fingerprint holds the credentials only
through a slow salted hash (PBKDF2), truncated: it reveals nothing usable about a long random secret.
Subscriptions without the marker are never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot.config import ServiceHookAuth, Settings

MARKER = "handoff-hook"
"""The query parameter of the consumer URL that marks a subscription as Handoff's."""
HOOK_PATH = "/hooks/azure-devops"

RUN_STATE = "ms.vss-pipelines.run-state-changed-event"
STAGE_STATE = "ms.vss-pipelines.stage-state-changed-event"
APPROVAL_PENDING = "ms.vss-pipelinechecks-events.approval-pending"
APPROVAL_COMPLETED = "ms.vss-pipelinechecks-events.approval-completed"
RELEASE_APPROVAL_PENDING = "ms.vss-release.deployment-approval-pending-event"
RELEASE_APPROVAL_COMPLETED = "ms.vss-release.deployment-approval-completed-event"
RELEASE_DEPLOYMENT_COMPLETED = "ms.vss-release.deployment-completed-event"
GIT_PUSH = "git.push"
PR_CREATED = "git.pullrequest.created"
PR_UPDATED = "git.pullrequest.updated"
PR_MERGED = "git.pullrequest.merged"

KIND_EVENT_TYPES: Mapping[str, tuple[str, ...]] = {
    # stage events keep a run's living card current (which stage failed), so runs need them too
    "run": (RUN_STATE, STAGE_STATE),
    "stage": (STAGE_STATE,),
    "approval": (APPROVAL_PENDING, APPROVAL_COMPLETED, RELEASE_APPROVAL_PENDING, RELEASE_APPROVAL_COMPLETED),
    "release": (RELEASE_DEPLOYMENT_COMPLETED,),
    "code_pushed": (GIT_PUSH,),
    "pull_request": (PR_CREATED, PR_UPDATED, PR_MERGED),
}
"""The Azure DevOps event types behind each routing kind that comes from Azure DevOps."""
AZURE_DEVOPS_KINDS = frozenset(KIND_EVENT_TYPES)

RESOURCE_VERSIONS: Mapping[str, str] = {
    RUN_STATE: "5.1-preview.1",
    STAGE_STATE: "5.1-preview.1",
    APPROVAL_PENDING: "5.1-preview.1",
    APPROVAL_COMPLETED: "5.1-preview.1",
    RELEASE_APPROVAL_PENDING: "3.0-preview.1",
    RELEASE_APPROVAL_COMPLETED: "3.0-preview.1",
    RELEASE_DEPLOYMENT_COMPLETED: "3.0-preview.1",
    GIT_PUSH: "1.0",
    PR_CREATED: "1.0",
    PR_UPDATED: "1.0",
    PR_MERGED: "1.0",
}
PUBLISHERS: Mapping[str, str] = {GIT_PUSH: "tfs", PR_CREATED: "tfs", PR_UPDATED: "tfs", PR_MERGED: "tfs"}


def publisher_of(event_type: str) -> str:
    """``pipelines`` for YAML pipelines and checks, ``rm`` for classic releases, ``tfs`` for code."""
    if event_type.startswith("ms.vss-release."):
        return "rm"
    return PUBLISHERS.get(event_type, "pipelines")


def kinds_of(events: Iterable[str]) -> set[str]:
    """The Azure DevOps routing kinds among ``events``; an empty filter means every kind."""
    wanted = {str(e) for e in events}
    return set(AZURE_DEVOPS_KINDS) if not wanted else wanted & AZURE_DEVOPS_KINDS


def configured_kinds(settings: Settings, chat_filters: Iterable[Mapping[str, object]] = ()) -> set[str]:
    """The Azure DevOps kinds Handoff routes: its YAML subscriptions', its chat subscriptions', and
    approvals always (release gates are opened from them)."""
    kinds = {"approval"}
    for subscription in settings.subscriptions:
        kinds |= kinds_of(subscription.events)
    for filters in chat_filters:
        kinds |= kinds_of(_strings(filters.get("events")))
    return kinds


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def event_types_for(kinds: Iterable[str]) -> tuple[str, ...]:
    """The event types to subscribe to for these kinds, in a stable order."""
    wanted = {t for kind in kinds for t in KIND_EVENT_TYPES.get(kind, ())}
    return tuple(t for t in RESOURCE_VERSIONS if t in wanted)


@dataclass(frozen=True)
class HookCredentials:
    """What each subscription sends to authenticate (from ``azure_devops.service_hooks``)."""

    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    header_name: str | None = field(default=None)
    header_value: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, auth: ServiceHookAuth) -> HookCredentials:
        return cls(
            username=auth.basic.username if auth.basic else None,
            password=auth.basic.password.reveal() if auth.basic else None,
            header_name=auth.header.name if auth.header else None,
            header_value=auth.header.value.reveal() if auth.header else None,
        )

    def consumer_inputs(self) -> dict[str, str]:
        inputs: dict[str, str] = {}
        if self.username is not None and self.password is not None:
            inputs["basicAuthUsername"] = self.username
            inputs["basicAuthPassword"] = self.password
        if self.header_name and self.header_value is not None:
            inputs["httpHeaders"] = f"{self.header_name}:{self.header_value}"
        return inputs

    def digest(self, salt: str) -> str:
        """A slow salted hash of the credentials, for the fingerprint only."""
        material = json.dumps([self.username, self.password, self.header_name, self.header_value]).encode()
        return hashlib.pbkdf2_hmac("sha256", material, f"handoff-hook:{salt}".encode(), 200_000).hex()


@dataclass(frozen=True)
class HookSpec:
    """One subscription Handoff wants."""

    project: str
    project_id: str
    event_type: str
    base_url: str  # the consumer URL without the marker

    @property
    def resource_version(self) -> str:
        return RESOURCE_VERSIONS.get(self.event_type, "1.0")

    @property
    def key(self) -> tuple[str, str]:
        return (self.project_id.lower(), self.event_type)

    def fingerprint(self, credentials_digest: str) -> str:
        described = [self.project_id.lower(), self.event_type, self.resource_version, self.base_url, credentials_digest]
        return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:20]

    def url(self, credentials_digest: str) -> str:
        """The consumer URL: the endpoint with the marker (no secret in it)."""
        return with_marker(self.base_url, self.fingerprint(credentials_digest))


@dataclass(frozen=True)
class ExistingHook:
    """A subscription the organization has, as listed."""

    id: str
    event_type: str
    project_id: str
    url: str
    status: str = "enabled"

    @property
    def fingerprint(self) -> str | None:
        """The marker's value: set on Handoff's own subscriptions only."""
        return marker_of(self.url)

    @property
    def key(self) -> tuple[str, str]:
        return (self.project_id.lower(), self.event_type)

    @property
    def working(self) -> bool:
        return self.status in ("enabled", "onProbation", "")


class Change(Enum):
    CREATE = "create"
    KEEP = "keep"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Action:
    """One step of a plan: what happens to which subscription, and why."""

    change: Change
    project: str
    event_type: str
    spec: HookSpec | None = None
    existing: ExistingHook | None = None
    reason: str = ""

    def describe(self) -> str:
        """One line, without secrets."""
        ident = f" {self.existing.id}" if self.existing is not None else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.change.value:<7} {self.project:<20} {self.event_type}{ident}{why}"


def with_marker(url: str, fingerprint: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != MARKER]
    query.append((MARKER, fingerprint))
    return urlunsplit(parts._replace(query=urlencode(query)))


def marker_of(url: str) -> str | None:
    try:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return None
    return next((v for k, v in query if k == MARKER), None)


def plan(
    wanted: Sequence[HookSpec],
    existing: Sequence[ExistingHook],
    credentials_digest: str,
    *,
    projects: Mapping[str, str] | None = None,
    remove_stale: bool = True,
) -> list[Action]:
    """What to do so that Handoff's subscriptions are exactly ``wanted``.

    Subscriptions without the marker are ignored. For each wanted one: keep the one of Handoff's that
    matches it exactly (same fingerprint, working), else create it, replacing any of Handoff's for the same
    project and event type (an update). Handoff's subscriptions left over are deleted when ``remove_stale``.
    ``projects`` maps project ids to names, for the descriptions of stale ones.
    """
    names = {k.lower(): v for k, v in (projects or {}).items()}
    ours = [hook for hook in existing if hook.fingerprint is not None]
    used: set[str] = set()
    actions: list[Action] = []
    for spec in wanted:
        same_key = [h for h in ours if h.key == spec.key and h.id not in used]
        exact = next((h for h in same_key if h.fingerprint == spec.fingerprint(credentials_digest) and h.working), None)
        if exact is not None:
            used.add(exact.id)
            actions.append(Action(Change.KEEP, spec.project, spec.event_type, spec, exact))
            continue
        if same_key:
            replaced = same_key[0]
            used.add(replaced.id)
            reason = "disabled" if not replaced.working else "settings changed"
            actions.append(Action(Change.UPDATE, spec.project, spec.event_type, spec, replaced, reason))
        else:
            actions.append(Action(Change.CREATE, spec.project, spec.event_type, spec))
    if remove_stale:
        for hook in ours:
            if hook.id not in used:
                project = names.get(hook.project_id.lower(), hook.project_id or "?")
                actions.append(Action(Change.DELETE, project, hook.event_type, None, hook, "no longer needed"))
    return actions
