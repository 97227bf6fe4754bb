"""Received events (dedupe by the sender's id) stored with their card states and outbox deliveries.

``record_events`` is the group commit: one transaction and a handful of statements for a whole batch —
the dedupe keys in one ``INSERT … ON CONFLICT DO NOTHING RETURNING``, each card written once with its
compare-and-set, the deliveries in one ``executemany``. On a SQLite file the whole transaction runs
straight on the driver, on the event loop's thread unless another process holds the write lock (see
:meth:`adapters.sql.engine.SqliteEngine.run_raw_write` and :mod:`adapters.sql.batch_statements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from adapters.sql.base import SqlBase, utc
from adapters.sql.batch_statements import BatchStatements, SqlAlchemyStatements, SqliteStatements, chunks
from adapters.sql.engine import SqliteEngine, run_read, run_write
from adapters.sql.tables import card_states, deliveries, received_events
from bot.ports import EventRecord, StaleWrite
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


@dataclass
class _CardWrite:
    """A card's consecutive new states in one batch: written once, as ``last``, over ``expected``."""

    expected: int
    last: CardState
    at: datetime


def _card_writes(records: Sequence[EventRecord], new: Sequence[bool]) -> dict[str, _CardWrite]:
    """Fold each card's new states in record order into one write.

    A gap in a card's versions is a lost compare-and-set, and so is a new record for a card after a
    redelivery that carried a state of it (that state is not stored, so what was planned on it is wrong).
    """
    cards: dict[str, _CardWrite] = {}
    redelivered: set[str] = set()
    for record, is_new in zip(records, new, strict=True):
        state = record.card_state
        key = state.grouping_key if state is not None else record.grouping_key
        if key is None:
            continue
        if not is_new:
            if state is not None:
                redelivered.add(key)
            continue
        if key in redelivered:
            raise StaleWrite(key)
        if state is None:
            continue
        write = cards.get(key)
        if write is None:
            cards[key] = _CardWrite(state.version - 1, state, record.event.received_at)
        elif state.version == write.last.version + 1:
            write.last, write.at = state, record.event.received_at
        else:
            raise StaleWrite(key)
    return cards


class SqlEventLog(SqlBase):
    async def record_event(
        self,
        event: ReceivedEvent,
        deliveries_: Sequence[NewDelivery],
        card_state: CardState | None = None,
    ) -> bool:
        (recorded,) = await self.record_events([EventRecord(event, deliveries_, card_state)])
        return recorded

    async def record_events(self, records: Sequence[EventRecord]) -> list[bool]:
        if not records:
            return []
        records = list(records)
        engine = self.engine
        if isinstance(engine, SqliteEngine) and engine.has_raw_writer:
            dialect = engine.dialect
            return await engine.run_raw_write(lambda raw: self._record(SqliteStatements(raw, dialect), records))
        is_postgres = self.is_postgres
        return await run_write(engine, lambda conn: self._record(SqlAlchemyStatements(conn, is_postgres), records))

    def _record(self, statements: BatchStatements, records: list[EventRecord]) -> list[bool]:
        first: dict[str, int] = {}
        for index, record in enumerate(records):
            first.setdefault(record.event.dedupe_key, index)
        candidates = [i for i, r in enumerate(records) if first[r.event.dedupe_key] == i]
        receipts = [
            {
                "dedupe_key": e.dedupe_key,
                "source": e.source,
                "kind": e.kind,
                "received_at": e.received_at,
                "payload": e.payload,
            }
            for e in sorted((records[i].event for i in candidates), key=lambda e: e.dedupe_key)
        ]
        inserted = statements.insert_new(received_events, "dedupe_key", receipts)
        new = [i for i in candidates if records[i].event.dedupe_key in inserted]
        stored = set(new)
        cards = _card_writes(records, [i in stored for i in range(len(records))])
        if cards:
            # keys and cards are written in sorted order, so that concurrent batches lock rows in one order
            self._write_card_states(statements, dict(sorted(cards.items())))
        rows = [
            row
            for i in new
            for row in delivery_rows(records[i].deliveries, records[i].event.dedupe_key, records[i].event.received_at)
        ]
        statements.insert(deliveries, rows)
        return [i in stored for i in range(len(records))]

    def _write_card_states(self, statements: BatchStatements, cards: dict[str, _CardWrite]) -> None:
        """Write every card once: insert the new ones, compare-and-set the others; StaleWrite if one lost."""
        written: set[str] = set()
        fresh = [
            {"grouping_key": w.last.grouping_key, "version": w.last.version, "state": w.last.state, "updated_at": w.at}
            for w in cards.values()
            if w.expected == 0
        ]
        written.update(statements.insert_new(card_states, "grouping_key", fresh))
        changed = {key: w for key, w in cards.items() if w.expected > 0}
        rows = [
            {"key": key, "expected": w.expected, "version": w.last.version, "state": w.last.state, "at": w.at}
            for key, w in changed.items()
        ]
        written.update(statements.compare_and_set(rows))
        lost = sorted(set(cards) - written)
        if lost:
            raise StaleWrite(", ".join(lost))

    async def get_card_state(self, grouping_key: str) -> CardState | None:
        return (await self.get_card_states([grouping_key])).get(grouping_key)

    async def get_card_states(self, grouping_keys: Sequence[str]) -> dict[str, CardState]:
        if not grouping_keys:
            return {}

        def read(conn: Connection) -> dict[str, CardState]:
            found: dict[str, CardState] = {}
            for chunk in chunks(grouping_keys):
                for row in conn.execute(select(card_states).where(card_states.c.grouping_key.in_(chunk))):
                    found[row.grouping_key] = CardState(
                        row.grouping_key, int(row.version), row.state, utc(row.updated_at)
                    )
            return found

        return await run_read(self.engine, read)

    async def has_event(self, dedupe_key: str) -> bool:
        return bool(await self.known_events([dedupe_key]))

    async def known_events(self, dedupe_keys: Sequence[str]) -> set[str]:
        if not dedupe_keys:
            return set()

        def read(conn: Connection) -> set[str]:
            known: set[str] = set()
            for chunk in chunks(dedupe_keys):
                query = select(received_events.c.dedupe_key).where(received_events.c.dedupe_key.in_(chunk))
                known.update(conn.execute(query).scalars())
            return known

        return await run_read(self.engine, read)

    async def forget_events_before(self, cutoff: datetime) -> int:
        statement = delete(received_events).where(received_events.c.received_at < cutoff)
        return await run_write(self.engine, lambda conn: int(conn.execute(statement).rowcount or 0))
