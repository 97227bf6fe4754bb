"""Subscriptions made from chat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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


# the unique index a conversation's subscriptions are told apart by (their filters in one normal form)
_SAME_SUBSCRIPTION = ["platform", "conversation_id", "filters_key"]


class SqlSubscriptionStore(SqlBase):
    async def add_subscription(self, subscription: StoredSubscription) -> tuple[int, bool]:
        key = subscription.filters_key
        make = postgresql_insert if self.is_postgres else sqlite_insert
        adding = (
            make(subscriptions)
            .values(
                platform=subscription.conversation.platform,
                conversation_id=subscription.conversation.conversation_id,
                filters=subscription.filters,
                created_by=subscription.created_by,
                created_at=subscription.created_at,
                muted_until=subscription.muted_until,
                filters_key=key,
            )
            .on_conflict_do_nothing(index_elements=_SAME_SUBSCRIPTION)
            .returning(subscriptions.c.id)
        )
        same = select(subscriptions.c.id).where(
            subscriptions.c.platform == subscription.conversation.platform,
            subscriptions.c.conversation_id == subscription.conversation.conversation_id,
            subscriptions.c.filters_key == key,
        )
        while True:
            async with self.engine.begin() as conn:
                added = (await conn.execute(adding)).scalar_one_or_none()
                if added is not None:
                    return int(added), True
                # (a conflict waited for the other transaction to commit: its row is there to read)
                existing = (await conn.execute(same)).scalar_one_or_none()
                if existing is not None:
                    return int(existing), False
            # removed between the two statements: try again

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
