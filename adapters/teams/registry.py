"""The Teams conversations Handoff can post to, kept in the core's :class:`~bot.ports.ConversationStore`.

A team install stores one record per channel (the General channel's id is the team's id); a personal
or group chat install stores that chat. Removals and deletions deactivate records, renames rename them.
Records are addressed ``ConversationAddress("teams", <channel or chat id>)``, exactly as a configured
channel is, so a channel bound by ``subscribe`` or an install is reached like one from the YAML file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace

from botbuilder.schema import Activity

from bot.clock import Clock
from bot.ports import ConversationStore
from bot.records import ConversationAddress, ConversationRecord

from .ids import split_thread
from .references import (
    StoredReference,
    channel_of,
    conversation_kind,
    reference_json,
    team_group_of,
    team_of,
    tenant_of,
)

log = logging.getLogger("handoff.teams")

GENERAL = "General"


def address(conversation_id: str) -> ConversationAddress:
    return ConversationAddress("teams", split_thread(conversation_id)[0])


class ConversationRegistry:
    """Reads and writes Teams conversation records.

    Args:
        store: the core's conversation store.
        clock: stamps ``updated_at``.
    """

    def __init__(self, store: ConversationStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # reads

    async def get(self, conversation_id: str) -> tuple[ConversationRecord, StoredReference] | None:
        """The active record for a channel or chat id (a thread id reads as its channel), with its reference."""
        found = await self.find(conversation_id)
        return found if found is not None and found[0].active else None

    async def find(self, conversation_id: str) -> tuple[ConversationRecord, StoredReference] | None:
        """The record for a channel or chat id, with its reference, active or not: an inactive one is a
        conversation Handoff was removed from (or that was deleted); None is one it never stored."""
        record = await self.store.get_conversation(address(conversation_id))
        stored = StoredReference.from_json(record.reference) if record is not None else None
        return (record, stored) if record is not None and stored is not None else None

    async def personal_chat(self, user_id: str) -> tuple[ConversationRecord, StoredReference] | None:
        """The active 1:1 chat with the person whose MRI or AAD object id is ``user_id``."""
        wanted = user_id.lower()
        for record, stored in await self._teams_records():
            if stored.kind == "personal" and wanted in (
                (stored.user_id or "").lower(),
                (stored.aad_object_id or "").lower(),
            ):
                return record, stored
        return None

    async def any_reference(self, tenant_id: str | None) -> tuple[ConversationRecord, StoredReference] | None:
        """Some active record of the tenant (any tenant if None): its service URL reaches the tenant."""
        found = await self._teams_records()
        for record, stored in found:
            if tenant_id is None or record.tenant_id == tenant_id:
                return record, stored
        return None

    # installs

    async def team_installed(self, activity: Activity, channels: Sequence[tuple[str, str | None]]) -> None:
        """Store every channel of the team the activity comes from (at least its General channel)."""
        team = team_of(activity)
        if team is None:
            log.warning("a team install without channelData.team; nothing stored")
            return
        team_id, team_name = team
        known = {channel_id: name for channel_id, name in channels}
        known.setdefault(team_id, None)
        for channel_id, name in known.items():
            channel_name = name or (GENERAL if channel_id == team_id else "")
            await self._save_channel(activity, channel_id, team_id, team_name, channel_name)
        log.info("Teams: installed in team %s (%d channels)", team_id, len(known))

    async def channel_seen(self, activity: Activity, name: str | None = None) -> None:
        """Make sure the channel of a message (or a created channel) is stored and active."""
        team = team_of(activity)
        channel = channel_of(activity)
        channel_id = channel[0] if channel else split_thread(activity.conversation.id)[0]
        if team is None:
            return
        existing = await self.store.get_conversation(address(channel_id))
        old = StoredReference.from_json(existing.reference) if existing else None
        if existing is not None and existing.active and old is not None and not name:
            return
        team_name = old.team_name if old else await self._team_name(team[0]) or team[1]
        channel_name = name or (channel[1] if channel and channel[1] else "") or (old.channel_name if old else "")
        if not channel_name and channel_id == team[0]:
            channel_name = GENERAL
        await self._save_channel(activity, channel_id, team[0], team_name or team[1], channel_name)

    async def chat_installed(self, activity: Activity) -> None:
        """Store a personal or group chat the app was added to (or that wrote to the bot)."""
        kind = conversation_kind(activity)
        sender = activity.from_property
        if kind == "personal":
            name = (sender.name if sender else "") or ""
            stored = StoredReference(
                reference_json(activity),
                "personal",
                channel_name=name,
                user_id=sender.id if sender else None,
                aad_object_id=getattr(sender, "aad_object_id", None) if sender else None,
            )
        else:
            name = getattr(activity.conversation, "name", None) or "Group chat"
            stored = StoredReference(reference_json(activity), "groupChat", channel_name=name)
        await self._save(activity.conversation.id, stored, tenant_of(activity), None)

    async def personal_chat_created(
        self, conversation_id: str, template: StoredReference, tenant_id: str | None, user_id: str
    ) -> None:
        """Store a 1:1 chat Handoff created to reach ``user_id``, from another record's reference."""
        reference = dict(template.reference)
        reference["conversation"] = {"id": conversation_id, "conversationType": "personal"}
        if tenant_id:
            reference["conversation"]["tenantId"] = tenant_id
        reference["user"] = {"id": user_id}
        stored = StoredReference(reference, "personal", channel_name=user_id, user_id=user_id)
        await self._save(conversation_id, stored, tenant_id, None)

    # removals, deletions, renames

    async def chat_removed(self, conversation_id: str) -> None:
        await self.store.deactivate_conversation(address(conversation_id))

    async def team_removed(self, team_id: str) -> int:
        """Deactivate every channel of the team; returns how many were active."""
        count = 0
        for record in await self._team(team_id, active_only=True):
            count += int(await self.store.deactivate_conversation(record.address))
        log.info("Teams: removed from team %s (%d channels deactivated)", team_id, count)
        return count

    async def team_restored(self, team_id: str) -> None:
        for record in await self._team(team_id, active_only=False):
            if not record.active:
                await self.store.save_conversation(replace(record, active=True, updated_at=self.clock.now()))

    async def team_renamed(self, team_id: str, name: str) -> None:
        for record in await self._team(team_id, active_only=False):
            stored = StoredReference.from_json(record.reference)
            if stored is None:
                continue
            await self._rewrite(record, replace(stored, team_name=name))

    async def channel_removed(self, channel_id: str) -> None:
        await self.store.deactivate_conversation(address(channel_id))

    async def channel_renamed(self, channel_id: str, name: str) -> None:
        record = await self.store.get_conversation(address(channel_id))
        stored = StoredReference.from_json(record.reference) if record else None
        if record is not None and stored is not None:
            await self._rewrite(record, replace(stored, channel_name=name))

    # helpers

    async def _save_channel(
        self, activity: Activity, channel_id: str, team_id: str, team_name: str, channel_name: str
    ) -> None:
        reference = reference_json(activity, channel_id)
        reference["conversation"]["conversationType"] = "channel"
        reference["conversation"]["isGroup"] = True
        stored = StoredReference(
            reference, "channel", team_name=team_name, channel_name=channel_name, team_group_id=team_group_of(activity)
        )
        await self._save(channel_id, stored, tenant_of(activity), team_id)

    async def _save(
        self, conversation_id: str, stored: StoredReference, tenant_id: str | None, team_id: str | None
    ) -> None:
        record = ConversationRecord(
            address=address(conversation_id),
            name=stored.display_name,
            tenant_id=tenant_id,
            team_id=team_id,
            reference=stored.to_json(),
            active=True,
            updated_at=self.clock.now(),
        )
        await self.store.save_conversation(record)

    async def _rewrite(self, record: ConversationRecord, stored: StoredReference) -> None:
        updated = replace(record, name=stored.display_name, reference=stored.to_json(), updated_at=self.clock.now())
        await self.store.save_conversation(updated)
        if not record.active:  # saving reactivates; a rename must not
            await self.store.deactivate_conversation(record.address)

    async def _team(self, team_id: str, *, active_only: bool) -> list[ConversationRecord]:
        records = await self.store.list_conversations(active_only=active_only)
        return [r for r in records if r.address.platform == "teams" and r.team_id == team_id]

    async def _team_name(self, team_id: str) -> str:
        for record in await self._team(team_id, active_only=False):
            stored = StoredReference.from_json(record.reference)
            if stored is not None and stored.team_name:
                return stored.team_name
        return ""

    async def _teams_records(self) -> Iterable[tuple[ConversationRecord, StoredReference]]:
        found = []
        for record in await self.store.list_conversations(active_only=True):
            if record.address.platform != "teams":
                continue
            stored = StoredReference.from_json(record.reference)
            if stored is not None:
                found.append((record, stored))
        return found
