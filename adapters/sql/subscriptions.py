"""Subscriptions made from chat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from adapters.sql.base import SqlBase, address, must_utc, utc
from adapters.sql.engine import run_read
from adapters.sql.tables import subscriptions
from bot.records import ConversationAddress, StoredSubscription


def _subscription(row: Any) -> StoredSubscription:
    return StoredSubscription(
        id=int(row.id),
        conversation=address(row.platform, row.conversation_id),
        filters=row.filters,
        created_by=row.created_by,
        created_at=must_utc(row.created_at),
        muted_until=utc(row.muted_until),
    )


class SqlSubscriptionStore(SqlBase):
    async def add_subscription(self, subscription: StoredSubscription) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(subscriptions)
                .values(
                    platform=subscription.conversation.platform,
                    conversation_id=subscription.conversation.conversation_id,
                    filters=subscription.filters,
                    created_by=subscription.created_by,
                    created_at=subscription.created_at,
                    muted_until=subscription.muted_until,
                )
                .returning(subscriptions.c.id)
            )
            return int(result.scalar_one())

    async def list_subscriptions(self, conversation: ConversationAddress | None = None) -> list[StoredSubscription]:
        query = select(subscriptions).order_by(subscriptions.c.id)
        if conversation is not None:
            query = query.where(
                subscriptions.c.platform == conversation.platform,
                subscriptions.c.conversation_id == conversation.conversation_id,
            )
        # (the ingest reads them every couple of seconds while events arrive: the cheap way, one hop)
        return await run_read(self.engine, lambda conn: [_subscription(row) for row in conn.execute(query)])

    async def remove_subscription(self, subscription_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(subscriptions).where(subscriptions.c.id == subscription_id))
        return bool(result.rowcount)

    async def mute_subscription(self, subscription_id: int, until: datetime | None) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(subscriptions).where(subscriptions.c.id == subscription_id).values(muted_until=until)
            )
        return bool(result.rowcount)
