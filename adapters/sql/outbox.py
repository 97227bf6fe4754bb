"""The outbox: deliveries leased to workers, retried, completed or dead-lettered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update

from adapters.sql.base import SqlBase, address, must_utc, utc
from adapters.sql.events import delivery_rows
from adapters.sql.tables import deliveries
from bot.records import Delivery, DeliveryState, NewDelivery


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=int(row.id),
        event_key=row.event_key,
        conversation=address(row.platform, row.conversation_id),
        grouping_key=row.grouping_key,
        payload=row.payload,
        state=DeliveryState(row.state),
        attempts=int(row.attempts),
        next_attempt_at=must_utc(row.next_attempt_at),
        created_at=must_utc(row.created_at),
        last_error=row.last_error,
        claimed_by=row.claimed_by,
        lease_until=utc(row.lease_until),
    )


class SqlOutbox(SqlBase):
    async def enqueue(self, deliveries_: Sequence[NewDelivery], now: datetime) -> list[int]:
        if not deliveries_:
            return []
        async with self.engine.begin() as conn:
            ids = []
            for row in delivery_rows(deliveries_, None, now):
                result = await conn.execute(insert(deliveries).values(**row).returning(deliveries.c.id))
                ids.append(int(result.scalar_one()))
        return ids

    async def claim_deliveries(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        earlier = deliveries.alias("earlier")
        head_of_conversation = ~exists().where(
            earlier.c.platform == deliveries.c.platform,
            earlier.c.conversation_id == deliveries.c.conversation_id,
            earlier.c.state == DeliveryState.PENDING.value,
            earlier.c.id < deliveries.c.id,
        )
        due = and_(
            deliveries.c.state == DeliveryState.PENDING.value,
            deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
        )
        candidates = select(deliveries.c.id).where(due, head_of_conversation).order_by(deliveries.c.id).limit(limit)
        if self.is_postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        async with self.engine.begin() as conn:
            ids = list((await conn.execute(candidates)).scalars())
            if not ids:
                return []
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids), due)
                .values(claimed_by=worker, lease_until=now + lease, attempts=deliveries.c.attempts + 1)
                .returning(*deliveries.c)
            )
            claimed = [_delivery(row) for row in result]
        return sorted(claimed, key=lambda d: d.id)

    async def _finish(self, delivery_id: int, worker: str, **values: Any) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.claimed_by == worker)
                .values(claimed_by=None, lease_until=None, **values)
            )
        return bool(result.rowcount)

    async def complete_delivery(self, delivery_id: int, worker: str) -> bool:
        return await self._finish(delivery_id, worker, state=DeliveryState.SENT.value, last_error=None)

    async def retry_delivery(self, delivery_id: int, worker: str, error: str, at: datetime) -> bool:
        return await self._finish(delivery_id, worker, last_error=error[:2000], next_attempt_at=at)

    async def dead_letter_delivery(self, delivery_id: int, worker: str, error: str) -> bool:
        return await self._finish(delivery_id, worker, state=DeliveryState.DEAD.value, last_error=error[:2000])

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        return _delivery(row) if row else None

    async def has_newer_delivery(self, delivery: Delivery) -> bool:
        query = select(deliveries.c.payload).where(
            deliveries.c.platform == delivery.conversation.platform,
            deliveries.c.conversation_id == delivery.conversation.conversation_id,
            deliveries.c.grouping_key == delivery.grouping_key,
            deliveries.c.state == DeliveryState.PENDING.value,
            deliveries.c.id > delivery.id,
        )
        async with self.engine.connect() as conn:
            payloads = list((await conn.execute(query)).scalars())
        # only a newer version of the card supersedes it; a reply in its thread does not
        return any(payload.get("op", "card") == "card" for payload in payloads)

    async def count_deliveries(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(deliveries.c.state, func.count()).group_by(deliveries.c.state))
            counts = {state.value: 0 for state in DeliveryState}
            counts.update({str(state): int(n) for state, n in rows})
        return counts
