"""Conversations the bot can reach, with their platform references."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from adapters.sql.base import SqlBase, address, upsert, utc
from adapters.sql.engine import run_read
from adapters.sql.tables import conversations
from bot.records import ConversationAddress, ConversationRecord


def _conversation(row: Any) -> ConversationRecord:
    return ConversationRecord(
        address=address(row.platform, row.conversation_id),
        name=row.name,
        tenant_id=row.tenant_id,
        team_id=row.team_id,
        reference=row.reference,
        active=bool(row.active),
        updated_at=utc(row.updated_at),
    )


class SqlConversationStore(SqlBase):
    async def save_conversation(self, record: ConversationRecord) -> None:
        values = {
            "platform": record.address.platform,
            "conversation_id": record.address.conversation_id,
            "name": record.name,
            "tenant_id": record.tenant_id,
            "team_id": record.team_id,
            "reference": record.reference,
            "active": record.active,
            "updated_at": record.updated_at,
        }
        async with self.engine.begin() as conn:
            await conn.execute(upsert(self.dialect, conversations, values, ["platform", "conversation_id"]))

    async def get_conversation(self, address_: ConversationAddress) -> ConversationRecord | None:
        query = select(conversations).where(
            conversations.c.platform == address_.platform,
            conversations.c.conversation_id == address_.conversation_id,
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _conversation(row) if row else None

    async def deactivate_conversation(self, address_: ConversationAddress) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(conversations)
                .where(
                    conversations.c.platform == address_.platform,
                    conversations.c.conversation_id == address_.conversation_id,
                    conversations.c.active.is_(True),
                )
                .values(active=False)
            )
        return bool(result.rowcount)

    async def list_conversations(self, active_only: bool = True) -> list[ConversationRecord]:
        query = select(conversations).order_by(conversations.c.id)
        if active_only:
            query = query.where(conversations.c.active.is_(True))
        async with self.engine.connect() as conn:
            return [_conversation(row) for row in await conn.execute(query)]

    async def inactive_conversations(self) -> frozenset[ConversationAddress]:
        query = select(conversations.c.platform, conversations.c.conversation_id).where(
            conversations.c.active.is_(False)
        )
        # (read with the subscriptions every couple of seconds while events arrive: the cheap way, one hop)
        return await run_read(
            self.engine,
            lambda conn: frozenset(address(row.platform, row.conversation_id) for row in conn.execute(query)),
        )
