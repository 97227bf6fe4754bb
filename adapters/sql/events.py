"""Received events (dedupe by the sender's id) stored with their outbox deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from adapters.sql.base import SqlBase
from adapters.sql.tables import deliveries, received_events
from bot.records import DeliveryState, NewDelivery, ReceivedEvent


def delivery_rows(items: Sequence[NewDelivery], event_key: str | None, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_key": event_key,
            "platform": d.conversation.platform,
            "conversation_id": d.conversation.conversation_id,
            "grouping_key": d.grouping_key,
            "payload": d.payload,
            "state": DeliveryState.PENDING.value,
            "attempts": 0,
            "next_attempt_at": d.not_before or now,
            "created_at": now,
        }
        for d in items
    ]


class SqlEventLog(SqlBase):
    async def record_event(self, event: ReceivedEvent, deliveries_: Sequence[NewDelivery]) -> bool:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(received_events).values(
                        dedupe_key=event.dedupe_key,
                        source=event.source,
                        kind=event.kind,
                        received_at=event.received_at,
                        payload=event.payload,
                    )
                )
                if deliveries_:
                    await conn.execute(
                        insert(deliveries), delivery_rows(deliveries_, event.dedupe_key, event.received_at)
                    )
        except IntegrityError:
            return False
        return True

    async def has_event(self, dedupe_key: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(received_events)
                .where(received_events.c.dedupe_key == dedupe_key)
            )
        return bool(found)

    async def forget_events_before(self, cutoff: datetime) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(received_events).where(received_events.c.received_at < cutoff))
        return int(result.rowcount or 0)
