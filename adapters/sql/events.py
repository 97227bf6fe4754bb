"""Received events (dedupe by the sender's id) stored with their outbox deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql.base import SqlBase, insert_unless_present, utc
from adapters.sql.tables import card_states, deliveries, received_events
from bot.ports import StaleWrite
from bot.records import CardState, DeliveryState, NewDelivery, ReceivedEvent


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


class _Duplicate(Exception):
    """Raised inside the transaction to roll it back when the event was already recorded."""


class SqlEventLog(SqlBase):
    async def record_event(
        self,
        event: ReceivedEvent,
        deliveries_: Sequence[NewDelivery],
        card_state: CardState | None = None,
    ) -> bool:
        try:
            async with self.engine.begin() as conn:
                inserted = await conn.execute(
                    insert_unless_present(
                        self.dialect,
                        received_events,
                        {
                            "dedupe_key": event.dedupe_key,
                            "source": event.source,
                            "kind": event.kind,
                            "received_at": event.received_at,
                            "payload": event.payload,
                        },
                        ["dedupe_key"],
                    )
                )
                if inserted.first() is None:
                    raise _Duplicate
                if card_state is not None:
                    await self._write_card_state(conn, card_state, event.received_at)
                if deliveries_:
                    await conn.execute(
                        insert(deliveries), delivery_rows(deliveries_, event.dedupe_key, event.received_at)
                    )
        except _Duplicate:
            return False
        return True

    async def _write_card_state(self, conn: AsyncConnection, state: CardState, now: datetime) -> None:
        values = {"state": state.state, "version": state.version, "updated_at": now}
        if state.version == 1:
            statement = insert_unless_present(
                self.dialect, card_states, {"grouping_key": state.grouping_key, **values}, ["grouping_key"]
            )
            written = (await conn.execute(statement)).first() is not None
        else:
            result = await conn.execute(
                update(card_states)
                .where(
                    card_states.c.grouping_key == state.grouping_key,
                    card_states.c.version == state.version - 1,
                )
                .values(**values)
            )
            written = bool(result.rowcount)
        if not written:
            raise StaleWrite(state.grouping_key)

    async def get_card_state(self, grouping_key: str) -> CardState | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(card_states).where(card_states.c.grouping_key == grouping_key))).first()
        if row is None:
            return None
        return CardState(row.grouping_key, int(row.version), row.state, utc(row.updated_at))

    async def has_event(self, dedupe_key: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(func.count()).select_from(received_events).where(received_events.c.dedupe_key == dedupe_key)
            )
        return bool(found)

    async def forget_events_before(self, cutoff: datetime) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(received_events).where(received_events.c.received_at < cutoff))
        return int(result.rowcount or 0)
