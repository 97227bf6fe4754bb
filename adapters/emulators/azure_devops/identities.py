"""Identities (area IMS): descriptors, lookups and the membership ``GET _apis/identities`` reports.

Every principal of the world has two descriptors:

- the identity descriptor, ``<type>;<identifier>``, which the Identities API uses for ``descriptors``,
  ``members`` and ``memberOf``: ``Microsoft.IdentityModel.Claims.ClaimsIdentity;<tenant>\\<uniqueName>``
  for a user, ``Microsoft.TeamFoundation.Identity;S-1-9-…`` (a SID derived from its id) for a group;
- the subject descriptor of the Graph API, ``aad.…`` or ``vssgp.…``, the ``descriptor`` of every
  ``IdentityRef`` the other APIs return (:mod:`shapes`).

``queryMembership`` follows the service's ``QueryMembership``: ``None`` reports no membership, ``Direct``
the direct members and groups, ``Expanded`` both at any depth, ``ExpandedDown`` members at any depth
(groups direct), ``ExpandedUp`` groups at any depth (members direct).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adapters.emulators.azure_devops.world import Group, Principal, World

#: The Microsoft Entra tenant the emulated organization is connected to (made up).
TENANT_ID = "3f6a5b1e-8c2d-4e7f-9a0b-1c2d3e4f5a6b"
USER_DESCRIPTOR_TYPE = "Microsoft.IdentityModel.Claims.ClaimsIdentity"
GROUP_DESCRIPTOR_TYPE = "Microsoft.TeamFoundation.Identity"
#: The ``queryMembership`` values, lower-cased, by the service's spelling.
QUERY_MEMBERSHIP = {m.lower(): m for m in ("None", "Direct", "Expanded", "ExpandedDown", "ExpandedUp")}


def subject_descriptor(who: Principal) -> str:
    """The Graph subject descriptor: an IdentityRef's ``descriptor``."""
    return f"{'vssgp' if isinstance(who, Group) else 'aad'}.{who.id.replace('-', '')}"


def group_sid(group_id: str) -> str:
    """A security identifier for a group, the same for the same id in every process."""
    digest = hashlib.sha256(group_id.lower().encode("utf-8")).digest()
    parts = (int.from_bytes(digest[n : n + 4], "big") for n in range(0, 16, 4))
    return "S-1-9-1551374245-" + "-".join(str(p) for p in parts)


def identity_descriptor(who: Principal) -> str:
    """The identity descriptor the Identities API uses."""
    if isinstance(who, Group):
        return f"{GROUP_DESCRIPTOR_TYPE};{group_sid(who.id)}"
    return f"{USER_DESCRIPTOR_TYPE};{TENANT_ID}\\{who.unique_name}"


@dataclass(frozen=True)
class Membership:
    """What an identity reports of its membership for one ``queryMembership``."""

    members: tuple[Principal, ...] = ()
    member_of: tuple[Group, ...] = ()


class Directory:
    """The world's identities and groups as the Identities API finds them.

    Args:
        world: whose principals are found.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._by_descriptor: dict[str, Principal] = {}
        for who in world.principals:
            self._by_descriptor[identity_descriptor(who).lower()] = who
            self._by_descriptor[subject_descriptor(who).lower()] = who

    def by_id(self, identity_id: str) -> Principal | None:
        """An identity or group by id (case-insensitive)."""
        return self.world.by_id(identity_id)

    def by_descriptor(self, descriptor: str) -> Principal | None:
        """An identity or group by identity descriptor or, for convenience, subject descriptor."""
        return self._by_descriptor.get(descriptor.lower())

    def membership(self, who: Principal, query: str) -> Membership:
        """The members and groups of ``who`` that ``query`` (a :data:`QUERY_MEMBERSHIP` value) reports."""
        if query == "None":
            return Membership()
        return Membership(members=self._members(who, query), member_of=self._member_of(who, query))

    def _members(self, who: Principal, query: str) -> tuple[Principal, ...]:
        if not isinstance(who, Group):
            return ()
        if query in ("Expanded", "ExpandedDown"):
            return self.world.expanded_members(who)
        return self.world.direct_members(who)

    def _member_of(self, who: Principal, query: str) -> tuple[Group, ...]:
        if query in ("Expanded", "ExpandedUp"):
            return self.world.expanded_groups(who)
        return self.world.direct_groups(who)
