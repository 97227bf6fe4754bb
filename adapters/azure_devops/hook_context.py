"""What every Azure DevOps service hook says about where it came from and who did it.

The organization comes from ``resourceContainers.*.baseUrl`` (real deliveries carry it) or from the
resource's URLs (``dev.azure.com/{org}/…``, ``{org}.visualstudio.com``); the project from a name in
the resource, a web URL, or the project container's id (reference/azure-devops.md §1.1).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from adapters.web.payloads import Fields
from bot.events import Person

SOURCE = "azure-devops"

_EMAIL = re.compile(r"[^@\s\\/]+@[^@\s\\/]+\.[^@\s\\/]+")
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
# where a pipeline's id shows in its links: ``…/_apis/Pipelines/{id}`` and ``…?definitionId={id}``
PIPELINE_API_URL = re.compile(r"/pipelines/(\d+)", re.IGNORECASE)
DEFINITION_ID_QUERY = re.compile(r"[?&]definitionId=(\d+)", re.IGNORECASE)
# how far a resource is searched for a URL that names the organization
_URL_SCAN_STRINGS = 200
_URL_SCAN_DEPTH = 8


@functools.lru_cache(maxsize=1024)  # every hook names its organization's URL again
def organization_from_url(url: str, *, is_base: bool = False) -> str | None:
    """The organization named by an Azure DevOps URL.

    ``https://dev.azure.com/{org}/…`` (and ``vsrm.``/``vssps.`` hosts) and ``https://{org}.visualstudio.com``
    name it in a known place. For a ``baseUrl`` (``is_base``), which is the organization's own URL, any
    other host (Azure DevOps Server, a local emulator) is named by its last path segment.
    """
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if host.endswith(".visualstudio.com"):
        return host.split(".", 1)[0]
    if host == "dev.azure.com" or host.endswith(".dev.azure.com"):
        return segments[0] if segments else None
    if is_base and parts.scheme in ("http", "https") and host:
        return segments[-1] if segments else host
    return None


@functools.lru_cache(maxsize=1024)  # and a run's URLs again for each of its events
def project_from_url(url: str | None, organization: str) -> str | None:
    """The project segment of a resource URL: the one before ``_apis``, ``_build``, ``_git``…"""
    if not url:
        return None
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    segments = [unquote(s) for s in path.split("/") if s]
    for i, segment in enumerate(segments):
        if segment.startswith("_"):
            if i == 0:
                return None
            candidate = segments[i - 1]
            if candidate.lower() in (organization.lower(), "defaultcollection"):
                return None
            return candidate
    return None


def _urls(value: Any, budget: list[int], depth: int = 0) -> Iterator[str]:
    """The http(s) URLs in a JSON value, an object's own strings before its nested objects'."""
    if budget[0] <= 0 or depth > _URL_SCAN_DEPTH:
        return
    if isinstance(value, str):
        budget[0] -= 1
        if value.startswith(("http://", "https://")):
            yield value
    elif isinstance(value, dict):
        scalars = [v for v in value.values() if not isinstance(v, dict | list)]
        nested = [v for v in value.values() if isinstance(v, dict | list)]
        for item in (*scalars, *nested):
            yield from _urls(item, budget, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item, budget, depth + 1)


def find_organization(envelope: Fields, resource: Fields, fallback: str = "") -> str:
    """The organization that sent a hook: ``resourceContainers`` first, then the resource's URLs."""
    containers = envelope.obj("resourceContainers")
    for name in ("account", "collection", "project"):
        base = containers.obj(name).text("baseUrl")
        if base and (found := organization_from_url(base, is_base=True)):
            return found
    for url in _urls(resource.raw, [_URL_SCAN_STRINGS]):
        if found := organization_from_url(url):
            return found
    return fallback


def email_from_unique_name(unique_name: str | None) -> str | None:
    """``uniqueName`` is an email for AAD users; older forms prefix it (``Windows Live ID\\x@y.com``)."""
    if not unique_name:
        return None
    candidate = unique_name.rsplit("\\", 1)[-1].strip()
    return candidate if _EMAIL.fullmatch(candidate) else None


def person(identity: Fields) -> Person | None:
    """An IdentityRef (``{id, displayName, uniqueName}``) or a git author (``{name, email}``)."""
    if not identity:
        return None
    name = identity.text("displayName") or identity.text("name") or ""
    email = email_from_unique_name(identity.text("uniqueName")) or email_from_unique_name(identity.text("email"))
    ident = identity.text("id")
    if not (name or email or ident):
        return None
    return Person(name=name, email=email, id=ident)


def is_group(identity: Fields) -> bool:
    """Whether an IdentityRef names a group or team (``isContainer``, or a ``vssgp.`` graph descriptor)."""
    descriptor = identity.get("descriptor")
    return identity.get("isContainer") is True or (isinstance(descriptor, str) and descriptor.startswith("vssgp."))


def _html(message: Fields) -> str:
    """The message as HTML, where it is a string (only a hint: a malformed one costs the event nothing)."""
    html = message.get("html")
    return html if isinstance(html, str) else ""


@dataclass(frozen=True)
class HookContext:
    """The envelope fields every event shares."""

    event_type: str
    event_id: str
    occurred_at: datetime
    # the envelope's createdDate as sent (``occurred_at`` is the time of receipt when it is missing)
    created_at: datetime | None
    organization: str
    project_id: str | None
    text: str
    resource_version: str
    # the message as HTML: its links name what the resource may leave out (an approval's environment)
    html: str = ""

    @classmethod
    def read(cls, envelope: Fields, resource: Fields, event_type: str, organization: str = "") -> HookContext:
        project_id = envelope.obj("resourceContainers").obj("project").text("id")
        created_at = envelope.time("createdDate")
        return cls(
            event_type=event_type,
            event_id=envelope.require_text("id"),
            occurred_at=created_at or datetime.now(UTC),
            created_at=created_at,
            organization=find_organization(envelope, resource, organization),
            project_id=project_id if project_id != ZERO_GUID else None,
            text=envelope.obj("message").text("text") or "",
            resource_version=envelope.text("resourceVersion") or "",
            html=_html(envelope.obj("message")),
        )

    def project(self, *names: str | None, urls: tuple[str | None, ...] = (), fallback: str | None = None) -> str | None:
        """The first project name given, else one read from ``urls``, else the project container's id,
        else ``fallback`` (the documented samples carry an all-zero project id: it counts as missing)."""
        for name in names:
            if name and name != ZERO_GUID:
                return name
        for url in urls:
            if found := project_from_url(url, self.organization):
                return found
        if self.project_id:
            return self.project_id
        return fallback if fallback != ZERO_GUID else None

    def base(
        self,
        *,
        project: str | None,
        actor: Person | None = None,
        web_url: str | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for the fields of :class:`bot.events.DomainEvent`."""
        return {
            "source": SOURCE,
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "scope": self.organization,
            "project": project,
            "project_id": self.project_id,
            "actor": actor,
            "web_url": web_url,
            "text": self.text,
        }
