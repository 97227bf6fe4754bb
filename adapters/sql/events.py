"""Received events (dedupe by the sender's id) stored with their card states and outbox deliveries.

``record_events`` is the group commit: one transaction and a handful of statements for a whole batch —
the dedupe keys in one ``INSERT … ON CONFLICT DO NOTHING RETURNING``, each card written once with its
compare-and-set, the deliveries in one ``executemany``. On SQLite the whole transaction is one hop to
the writer thread (see :func:`adapters.sql.engine.run_write`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import Connection

from adapters.sql.base import SqlBase, utc
from adapters.sql.engine import run_read, run_write
from adapters.sql.tables import card_states, deliveries, received_events
from bot.ports import EventRecord, StaleWrite
from bot.records import CardState, DeliveryState, NewDelivery, ReceivedEvent

# Keys per IN (...) list, well under SQLite's and asyncpg's limits on bound parameters.
CHUNK = 500

# A card's compare-and-set: the new state only over the version it was merged on.
_COMPARE_AND_SET = (
    update(card_states)
    .where(card_states.c.grouping_key == bindparam("key"), card_states.c.version == bindparam("expected"))
    .values(
        version=bindparam("version", type_=card_states.c.version.type),
        state=bindparam("state", type_=card_states.c.state.type),
        updated_at=bindparam("at", type_=card_states.c.updated_at.type),
    )
)


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


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    unique = list(dict.fromkeys(items))
    return [unique[i : i + CHUNK] for i in range(0, len(unique), CHUNK)]


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
        return await run_write(self.engine, lambda conn: self._record(conn, records))

    def _record(self, conn: Connection, records: list[EventRecord]) -> list[bool]:
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
        inserted = self._insert_new(conn, received_events, "dedupe_key", receipts)
        new = [i for i in candidates if records[i].event.dedupe_key in inserted]
        stored = set(new)
        cards = _card_writes(records, [i in stored for i in range(len(records))])
        if cards:
            # keys and cards are written in sorted order, so that concurrent batches lock rows in one order
            self._write_card_states(conn, dict(sorted(cards.items())))
        rows = [
            row
            for i in new
            for row in delivery_rows(records[i].deliveries, records[i].event.dedupe_key, records[i].event.received_at)
        ]
        if rows:
            conn.execute(insert(deliveries), rows)
        return [i in stored for i in range(len(records))]

    def _insert_new(self, conn: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> set[str]:
        """Insert the rows whose ``key`` is not in the table yet; returns the keys inserted."""
        if not rows:
            return set()
        if self.is_postgres:
            statement = postgresql_insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
            # an executemany with RETURNING: SQLAlchemy sends it as multi-row INSERTs
            return set(conn.execute(statement, rows).scalars())
        # SQLite: this transaction holds the write lock, so nothing can appear between the look and the insert
        # (and plain statements are compiled once, unlike ON CONFLICT ones)
        present: set[str] = set()
        for chunk in _chunks([row[key] for row in rows]):
            # straight to the driver: the keys are plain strings, and an expanding IN costs more to build
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT {key} FROM {table.name} WHERE {key} IN ({marks})"  # noqa: S608 (our own names)
            present.update(found for (found,) in conn.exec_driver_sql(query, tuple(chunk)))
        fresh = {row[key]: row for row in rows if row[key] not in present}  # the first of equal keys wins
        if fresh:
            conn.execute(insert(table), list(fresh.values()))
        return set(fresh)

    def _write_card_states(self, conn: Connection, cards: dict[str, _CardWrite]) -> None:
        """Write every card once: insert the new ones, compare-and-set the others; StaleWrite if one lost."""
        written: set[str] = set()
        fresh = [
            {"grouping_key": w.last.grouping_key, "version": w.last.version, "state": w.last.state, "updated_at": w.at}
            for w in cards.values()
            if w.expected == 0
        ]
        written.update(self._insert_new(conn, card_states, "grouping_key", fresh))
        changed = {key: w for key, w in cards.items() if w.expected > 0}
        rows = [
            {"key": key, "expected": w.expected, "version": w.last.version, "state": w.last.state, "at": w.at}
            for key, w in changed.items()
        ]
        if rows and not self.is_postgres:
            # SQLite sums an executemany's rowcount: all of them were written, or the transaction is undone
            if conn.execute(_COMPARE_AND_SET, rows).rowcount == len(rows):
                written.update(changed)
        else:  # asyncpg reports no rowcount for an executemany
            for key, row in zip(changed, rows, strict=True):
                if conn.execute(_COMPARE_AND_SET, row).rowcount == 1:
                    written.add(key)
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
            for chunk in _chunks(grouping_keys):
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
            for chunk in _chunks(dedupe_keys):
                query = select(received_events.c.dedupe_key).where(received_events.c.dedupe_key.in_(chunk))
                known.update(conn.execute(query).scalars())
            return known

        return await run_read(self.engine, read)

    async def forget_events_before(self, cutoff: datetime) -> int:
        statement = delete(received_events).where(received_events.c.received_at < cutoff)
        return await run_write(self.engine, lambda conn: int(conn.execute(statement).rowcount or 0))
