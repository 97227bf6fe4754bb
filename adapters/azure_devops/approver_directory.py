"""The people behind an approval's approvers, from Azure DevOps' Identities API.

An approval's hook often names an approver by id alone (``displayName`` null, no ``uniqueName``), and a
step may be assigned to a group or team, any member of which may decide it ("teams as approvers",
reference/what-users-ask.md §1.4). Handoff needs the people: their emails let them decide the gate in
chat and let its card call on them. ``GET _apis/identities`` (the SDK's ``IdentityClient``) tells both:
a person's ``Mail`` or ``Account``, a group's ``members``, read with ``queryMembership=Direct`` level by
level (nested groups are flattened, to a bounded depth and count).

Answers are cached per identity for a few minutes: a gate's pending and completed hooks, and the gates of
a busy release, name the same approvers. The calls go through the organization's
:class:`~adapters.azure_devops.gateway.AzureDevOpsGateway`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from azure.devops.connection import Connection

from adapters.azure_devops.gateway import AzureDevOpsGateway
from adapters.azure_devops.hook_context import email_from_unique_name
from bot.events import Approver, Person

CACHE_SECONDS = 300.0
# The people of a group read at most; beyond them, the rest decide in Azure DevOps.
MAX_MEMBERS = 200
MAX_DEPTH = 3
# Descriptors are long (about 100 characters): a few at a time keep the request line short.
DESCRIPTORS_PER_CALL = 20


@dataclass(frozen=True)
class _Known:
    """What the Identities API said of one identity."""

    person: Person
    group: bool
    member_descriptors: tuple[str, ...] = ()


def _property(identity: Any, name: str) -> str | None:
    """A property of an Identity (``{"$type": "System.String", "$value": …}``), as text."""
    properties = getattr(identity, "properties", None) or {}
    value = properties.get(name) if isinstance(properties, dict) else None
    if isinstance(value, dict):
        value = value.get("$value")
    return value if isinstance(value, str) and value else None


def _known(identity: Any) -> _Known:
    name = identity.custom_display_name or identity.provider_display_name or ""
    if identity.is_container:
        return _Known(Person(name=name, id=identity.id), True, tuple(identity.members or ()))
    mail, account = _property(identity, "Mail"), _property(identity, "Account")
    email = email_from_unique_name(mail) or email_from_unique_name(account)
    return _Known(Person(name=name, email=email, id=identity.id), False)


def identity_person(identity: Any) -> Person:
    """The person an Identity (the SDK's, as ``connectionData`` or the Identities API give it) stands for."""
    return _known(identity).person


class ApproverDirectory:
    """Completes approvers with the people behind them; see the module's docstring."""

    def __init__(
        self,
        connection: Connection,
        gateway: AzureDevOpsGateway,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connection = connection
        self._gateway = gateway
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._by_id: dict[str, tuple[float, _Known]] = {}
        self._members: dict[str, tuple[float, tuple[tuple[Person, ...], bool]]] = {}

    async def completed(self, approvers: Sequence[Approver], *, fresh: bool = False) -> tuple[Approver, ...]:
        """``approvers`` with a person's name and email where only an id was given, and a group's members.

        An approver who already has an email is left as it is; so is one the service does not know. With
        ``fresh``, Azure DevOps is asked again rather than the cache (someone may have joined a group).
        Raises what the SDK raises when Azure DevOps cannot be asked.
        """
        wanted = [a.person.id for a in approvers if a.person.id and a.needs_lookup]
        if not wanted:
            return tuple(approvers)
        known = await self._identities(wanted, fresh)
        completed = []
        for approver in approvers:
            found = known.get((approver.person.id or "").lower())
            if found is None or not approver.needs_lookup:
                completed.append(approver)
            elif found.group:
                members, complete = await self._members_of(found, fresh)
                person = replace(approver.person, name=approver.person.name or found.person.name)
                completed.append(
                    replace(approver, person=person, group=True, members=members, members_complete=complete)
                )
            else:
                person = Person(
                    name=approver.person.name or found.person.name,
                    email=approver.person.email or found.person.email,
                    id=approver.person.id,
                )
                completed.append(replace(approver, person=person))
        return tuple(completed)

    async def _identities(self, ids: Iterable[str], fresh: bool) -> dict[str, _Known]:
        """The identities with these ids, by lowercased id: from the cache, else one call for the rest."""
        now = self._clock()
        found: dict[str, _Known] = {}
        missing = []
        for ident in dict.fromkeys(i.lower() for i in ids):
            cached = None if fresh else self._by_id.get(ident)
            if cached is not None and cached[0] > now:
                found[ident] = cached[1]
            else:
                missing.append(ident)
        if missing:
            for identity in await self._read(identity_ids=",".join(missing)):
                known = _known(identity)
                key = (known.person.id or "").lower()
                self._by_id[key] = (now + self._cache_seconds, known)
                found[key] = known
        return found

    async def _members_of(self, group: _Known, fresh: bool) -> tuple[tuple[Person, ...], bool]:
        """The people in ``group``, nested groups flattened (breadth first, bounded), and whether that is
        all of them."""
        key = (group.person.id or "").lower()
        now = self._clock()
        cached = None if fresh else self._members.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        people: dict[str, Person] = {}
        seen: set[str] = set()
        level = list(group.member_descriptors)
        for _ in range(MAX_DEPTH):
            level = [d for d in dict.fromkeys(level) if d not in seen]
            if not level or len(people) > MAX_MEMBERS:
                break
            seen.update(level)
            next_level: list[str] = []
            for start in range(0, len(level), DESCRIPTORS_PER_CALL):
                if len(people) > MAX_MEMBERS:
                    break
                for identity in await self._read(descriptors=",".join(level[start : start + DESCRIPTORS_PER_CALL])):
                    member = _known(identity)
                    if member.group:
                        next_level.extend(member.member_descriptors)
                    elif member.person.email:
                        people.setdefault(member.person.email.lower(), member.person)
            level = next_level
        # all of them, unless some were past the bound or in groups nested deeper than MAX_DEPTH
        complete = len(people) <= MAX_MEMBERS and all(d in seen for d in level)
        people = dict(list(people.items())[:MAX_MEMBERS])
        answer = (tuple(people.values()), complete)
        self._members[key] = (now + self._cache_seconds, answer)
        return answer

    async def _read(self, **query: str) -> list[Any]:
        """``IdentityClient.read_identities(…, query_membership="Direct")``; the unknown ones left out."""

        def read() -> list[Any]:
            client = self._gateway.watch(self._connection.clients_v7_1.get_identity_client())
            return list(client.read_identities(query_membership="Direct", **query) or [])

        return [identity for identity in await self._gateway.run(read) if identity is not None]
