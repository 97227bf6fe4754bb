"""The outbox: deliveries leased to workers (the leases renewed while their attempts go on), retried, completed,
dead-lettered or given up as unreachable.

Each operation is one short transaction (on SQLite, one hop to the writer thread); a card's update, once
sent, is recorded in one: the card saved, the delivery and the versions it supersedes marked sent. Looking for due
deliveries takes no write lock: on SQLite the candidates are read first and only an actual claim writes;
PostgreSQL locks the candidates it takes with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from adapters.sql.base import SqlBase, address, must_utc, utc
from adapters.sql.cards import card_upsert
from adapters.sql.engine import run_read, run_write
from adapters.sql.events import delivery_rows
from adapters.sql.retention import forget_rows
from adapters.sql.tables import conversation_sends, deliveries
from bot.records import ConversationAddress, Delivery, DeliveryState, NewDelivery, PostedCard

PENDING = DeliveryState.PENDING.value
FINISHED = (DeliveryState.SENT.value, DeliveryState.DEAD.value, DeliveryState.UNREACHABLE.value)
ERROR_LENGTH = 2000  # of a delivery's last error kept


def _delivery(row: Any, recovered_from: str | None = None) -> Delivery:
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
        recovered=recovered_from is not None,
        recovered_from=recovered_from,
    )


def _due(now: datetime) -> ColumnElement[bool]:
    """Pending, its time has come, and nobody holds a lease on it."""
    return and_(
        deliveries.c.state == PENDING,
        deliveries.c.next_attempt_at <= now,
        or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
    )


def _head_of_conversation() -> ColumnElement[bool]:
    """No earlier delivery of the same conversation is still pending (each conversation goes in order)."""
    earlier = deliveries.alias("earlier")
    return ~exists().where(
        earlier.c.platform == deliveries.c.platform,
        earlier.c.conversation_id == deliveries.c.conversation_id,
        earlier.c.state == PENDING,
        earlier.c.id < deliveries.c.id,
    )


def _later_for_the_same_card(delivery: Delivery) -> list[ColumnElement[bool]]:
    """Pending deliveries queued after ``delivery`` for the same card in the same conversation."""
    return [
        deliveries.c.platform == delivery.conversation.platform,
        deliveries.c.conversation_id == delivery.conversation.conversation_id,
        deliveries.c.grouping_key == delivery.grouping_key,
        deliveries.c.state == PENDING,
        deliveries.c.id > delivery.id,
    ]


class SqlOutbox(SqlBase):
    async def enqueue(self, deliveries_: Sequence[NewDelivery], now: datetime) -> list[int]:
        if not deliveries_:
            return []
        rows = delivery_rows(deliveries_, None, now)

        def write(conn: Connection) -> list[int]:
            statement = insert(deliveries).returning(deliveries.c.id, sort_by_parameter_order=True)
            return [int(i) for i in conn.execute(statement, rows).scalars()]

        return await run_write(self.engine, write)

    async def claim_deliveries(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
        due, head = _due(now), _head_of_conversation()
        candidates = select(deliveries.c.id, deliveries.c.claimed_by).where(due, head).order_by(deliveries.c.id)

        def claim(conn: Connection) -> list[Delivery]:
            query = candidates.limit(limit)
            found = conn.execute(query.with_for_update(skip_locked=True) if self.is_postgres else query).all()
            if not found:
                return []
            # a lease that ran out under a worker (or was deferred by one) ended without a recorded outcome
            recovered = {int(row.id): str(row.claimed_by) for row in found if row.claimed_by is not None}
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_([row.id for row in found]), due)
                .values(claimed_by=worker, lease_until=now + lease, attempts=deliveries.c.attempts + 1)
                .returning(*deliveries.c)
            )
            return sorted((_delivery(row, recovered.get(int(row.id))) for row in result), key=lambda d: d.id)

        if not self.is_postgres:
            # SQLite has one write lock for the whole database: take it only when something is due
            anything = await run_read(self.engine, lambda conn: conn.execute(candidates.limit(1)).first())
            if anything is None:
                return []
        return await run_write(self.engine, claim)

    async def renew_claims(self, worker: str, leases: Mapping[int, datetime], until: datetime) -> set[int]:
        if not leases:
            return set()
        # each lease as the worker last wrote it: a fence against what its attempt recorded since (a deferral
        # keeps the worker's name and sets a lease of its own) and against any claim made since
        held = or_(*(and_(deliveries.c.id == i, deliveries.c.lease_until == at) for i, at in leases.items()))
        statement = (
            update(deliveries)
            .where(held, deliveries.c.claimed_by == worker, deliveries.c.state == PENDING)
            .values(lease_until=until)
            .returning(deliveries.c.id)
        )
        return await run_write(self.engine, lambda conn: {int(i) for i in conn.execute(statement).scalars()})

    async def _finish(self, delivery_id: int, worker: str, **values: Any) -> bool:
        statement = (
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.claimed_by == worker)
            .values(claimed_by=None, lease_until=None, **values)
        )
        return await run_write(self.engine, lambda conn: bool(conn.execute(statement).rowcount))

    async def defer_delivery(self, delivery_id: int, worker: str, error: str, at: datetime) -> bool:
        # the worker keeps its name on the delivery, so that the claim after ``at`` knows it as a recovery
        statement = (
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.claimed_by == worker)
            .values(lease_until=at, last_error=error[:ERROR_LENGTH])
        )
        return await run_write(self.engine, lambda conn: bool(conn.execute(statement).rowcount))

    async def postpone_delivery(self, delivery: Delivery, worker: str, at: datetime) -> bool:
        values: dict[str, Any] = {"attempts": deliveries.c.attempts - 1, "next_attempt_at": at, "lease_until": None}
        if not delivery.recovered:  # (a recovery keeps the worker's name on it: the next claim is a recovery again)
            values["claimed_by"] = None
        statement = (
            update(deliveries).where(deliveries.c.id == delivery.id, deliveries.c.claimed_by == worker).values(**values)
        )
        return await run_write(self.engine, lambda conn: bool(conn.execute(statement).rowcount))

    async def complete_delivery(self, delivery_id: int, worker: str) -> bool:
        return await self._finish(delivery_id, worker, state=DeliveryState.SENT.value, last_error=None)

    async def retry_delivery(self, delivery_id: int, worker: str, error: str, at: datetime) -> bool:
        return await self._finish(delivery_id, worker, last_error=error[:ERROR_LENGTH], next_attempt_at=at)

    async def dead_letter_delivery(self, delivery_id: int, worker: str, error: str) -> bool:
        return await self._finish(delivery_id, worker, state=DeliveryState.DEAD.value, last_error=error[:ERROR_LENGTH])

    async def unreachable_delivery(self, delivery_id: int, worker: str, error: str) -> bool:
        state = DeliveryState.UNREACHABLE.value
        return await self._finish(delivery_id, worker, state=state, last_error=error[:ERROR_LENGTH])

    async def forget_deliveries_before(self, cutoff: datetime) -> int:
        # when it was last due stands for when it finished (attempts are minutes apart), and is indexed
        finished = and_(deliveries.c.state.in_(FINISHED), deliveries.c.next_attempt_at < cutoff)
        return await forget_rows(self.engine, deliveries, finished)

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        def read(conn: Connection) -> Delivery | None:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
            return _delivery(row) if row else None

        return await run_read(self.engine, read)

    async def latest_card_delivery(self, delivery: Delivery) -> Delivery:
        query = select(deliveries).where(*_later_for_the_same_card(delivery)).order_by(deliveries.c.id.desc())

        def read(conn: Connection) -> Delivery:
            for row in conn.execute(query):  # newest first; replies do not show the card
                if row.payload.get("op", "card") == "card":
                    return _delivery(row)
            return delivery

        return await run_read(self.engine, read)

    async def complete_shown(self, delivery: Delivery, worker: str, card: PostedCard) -> list[int]:
        later = select(deliveries.c.id, deliveries.c.payload).where(*_later_for_the_same_card(delivery))
        save = card_upsert(self.dialect, card)
        sent = (
            update(deliveries)
            .where(deliveries.c.id == delivery.id, deliveries.c.claimed_by == worker)
            .values(claimed_by=None, lease_until=None, state=DeliveryState.SENT.value, last_error=None)
        )

        def write(conn: Connection) -> list[int]:
            # only while the claim is still the worker's: once its lease ran out, the attempt that claimed the
            # delivery since owns its card and its later versions
            if not conn.execute(sent).rowcount:
                return []
            conn.execute(save)
            ids = [
                row.id
                for row in conn.execute(later)
                if row.payload.get("op", "card") == "card" and int(row.payload.get("rank", 0)) <= card.rank
            ]
            superseded: list[int] = []
            if ids:
                done = update(deliveries).where(
                    deliveries.c.id.in_(ids), deliveries.c.state == PENDING, deliveries.c.claimed_by.is_(None)
                )
                completed = done.values(state=DeliveryState.SENT.value, last_error=None).returning(deliveries.c.id)
                superseded = sorted(int(i) for i in conn.execute(completed).scalars())
            return superseded

        return await run_write(self.engine, write)

    async def count_deliveries(self, states: Sequence[DeliveryState] | None = None) -> dict[str, int]:
        def read(conn: Connection) -> dict[str, int]:
            if states is not None:  # each a search of the (state, next_attempt_at) index, not a scan of it all
                count = select(func.count()).select_from(deliveries)
                return {
                    s.value: int(conn.execute(count.where(deliveries.c.state == s.value)).scalar_one()) for s in states
                }
            rows = conn.execute(select(deliveries.c.state, func.count()).group_by(deliveries.c.state))
            counts = {state.value: 0 for state in DeliveryState}
            counts.update({str(state): int(n) for state, n in rows})
            return counts

        return await run_read(self.engine, read)

    async def count_dead_letters(self, conversation: ConversationAddress, since: datetime) -> int:
        # when it was last due stands for when it was given up (at once, on the attempt that was due)
        count = select(func.count()).where(
            deliveries.c.platform == conversation.platform,
            deliveries.c.conversation_id == conversation.conversation_id,
            deliveries.c.state == DeliveryState.DEAD.value,
            deliveries.c.next_attempt_at >= since,
        )
        return await run_read(self.engine, lambda conn: int(conn.execute(count).scalar_one()))

    async def record_send(self, conversation: ConversationAddress, at: datetime) -> None:
        row = {"platform": conversation.platform, "conversation_id": conversation.conversation_id, "sent_at": at}
        await run_write(self.engine, lambda conn: conn.execute(insert(conversation_sends), row))

    async def latest_sends(
        self, conversation: ConversationAddress, windows: Sequence[tuple[int, float]], now: datetime
    ) -> list[datetime | None]:
        if not windows:
            return []
        sends = conversation_sends.c
        # per window, a walk of at most ``count`` entries of the conversation's index, newest first
        latest = [
            select(sends.sent_at)
            .where(
                sends.platform == conversation.platform,
                sends.conversation_id == conversation.conversation_id,
                sends.sent_at > now - timedelta(seconds=seconds),
            )
            .order_by(sends.sent_at.desc())
            .limit(1)
            .offset(count - 1)
            .scalar_subquery()
            for count, seconds in windows
        ]
        query = select(*(column.label(f"w{i}") for i, column in enumerate(latest)))

        def read(conn: Connection) -> list[datetime | None]:
            row = conn.execute(query).one()
            return [utc(value) for value in row[: len(latest)]]

        return await run_read(self.engine, read)

    async def forget_sends_before(self, cutoff: datetime) -> int:
        return await forget_rows(self.engine, conversation_sends, conversation_sends.c.sent_at < cutoff)
