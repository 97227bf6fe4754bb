"""Received events (dedupe by the sender's id) stored with their card states and outbox deliveries.

``record_events`` is the group commit: one transaction and a handful of statements for a whole batch —
the dedupe keys in one ``INSERT … ON CONFLICT DO NOTHING RETURNING``, each card written once with its
compare-and-set, the deliveries in one ``executemany``, and the new records' repeat marks, if any, in one
``INSERT … ON CONFLICT DO UPDATE``. On a SQLite file the whole transaction runs
straight on the driver, on the event loop's thread unless another process holds the write lock (see
:meth:`adapters.sql.engine.SqliteEngine.run_raw_write` and :mod:`adapters.sql.batch_statements`); on
PostgreSQL straight on asyncpg, each kind of row in one statement over arrays
(:mod:`adapters.sql.postgres_batch`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from adapters.sql.base import SqlBase, address, must_utc, utc
from adapters.sql.batch_statements import BatchStatements, SqlAlchemyStatements, SqliteStatements, chunks
from adapters.sql.engine import INGEST_WRITE_TIMEOUT, PostgresEngine, SqliteEngine, run_read, run_write
from adapters.sql.postgres_batch import AsyncpgStatements
from adapters.sql.retention import forget_rows
from adapters.sql.tables import card_states, deliveries, received_events, repeat_marks
from bot.ports import CHAT_RECEIPT_SOURCES, EventRecord, StaleWrite, StoreNotAnswering
from bot.records import CardState, ConversationAddress, DeliveryState, NewDelivery, ReceivedEvent, RepeatMark


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


class _Batch:
    """One group commit's rows, worked out between its statements (whichever database runs them).

    The receipts first (the first of equal dedupe keys); once the store said which were new, the card
    writes folded from the new records (:func:`_card_writes`), then the new records' deliveries and
    repeat marks.
    """

    def __init__(self, records: list[EventRecord]) -> None:
        self.records = records
        first: dict[str, int] = {}
        for index, record in enumerate(records):
            first.setdefault(record.event.dedupe_key, index)
        self.candidates = [i for i, r in enumerate(records) if first[r.event.dedupe_key] == i]
        self.stored: set[int] = set()
        self.cards: dict[str, _CardWrite] = {}

    def receipts(self) -> list[dict[str, Any]]:
        """The candidates' receipts, in key order (so that concurrent batches lock rows in one order)."""
        events = sorted((self.records[i].event for i in self.candidates), key=lambda e: e.dedupe_key)
        return [
            {
                "dedupe_key": e.dedupe_key,
                "source": e.source,
                "kind": e.kind,
                "received_at": e.received_at,
                "payload": e.payload,
            }
            for e in events
        ]

    def inserted(self, keys: set[str]) -> None:
        """The dedupe keys the store took: their records are the new ones."""
        self.stored = {i for i in self.candidates if self.records[i].event.dedupe_key in keys}
        new = [i in self.stored for i in range(len(self.records))]
        self.cards = dict(sorted(_card_writes(self.records, new).items()))

    def card_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The cards to insert, and the compare-and-set rows of the others."""
        fresh = [
            {"grouping_key": w.last.grouping_key, "version": w.last.version, "state": w.last.state, "updated_at": w.at}
            for w in self.cards.values()
            if w.expected == 0
        ]
        changed = [
            {"key": key, "expected": w.expected, "version": w.last.version, "state": w.last.state, "at": w.at}
            for key, w in self.cards.items()
            if w.expected > 0
        ]
        return fresh, changed

    def check_cards(self, written: set[str]) -> None:
        """StaleWrite unless every card was written (another writer changed one first)."""
        lost = sorted(set(self.cards) - written)
        if lost:
            raise StaleWrite(", ".join(lost))

    def delivery_rows(self) -> list[dict[str, Any]]:
        return [
            row
            for i in sorted(self.stored)
            for row in delivery_rows(
                self.records[i].deliveries, self.records[i].event.dedupe_key, self.records[i].event.received_at
            )
        ]

    def repeat_mark_rows(self) -> list[dict[str, Any]]:
        """The new records' repeat marks, the last of each conversation and repeat key, in key order (so that
        concurrent batches lock rows in one order), each with the stored mark it is written over
        (``over_key`` and ``over_at``; None for a first mark)."""
        planned = {id(mark) for record in self.records for mark in record.repeat_marks}
        marks: dict[tuple[str, str, str], RepeatMark] = {}
        for i in self.candidates:  # in record order
            if self.records[i].repeat_marks and i in self.stored:
                for mark in self.records[i].repeat_marks:
                    marks[(mark.conversation.platform, mark.conversation.conversation_id, mark.repeat_key)] = mark
        rows = []
        for (platform, conversation_id, repeat_key), mark in sorted(marks.items(), key=lambda item: item[0]):
            over = mark.replaces
            while over is not None and id(over) in planned:  # a mark of this batch: the stored one is before it
                over = over.replaces
            rows.append(
                {
                    "platform": platform,
                    "conversation_id": conversation_id,
                    "repeat_key": repeat_key,
                    "grouping_key": mark.grouping_key,
                    "shown_at": mark.shown_at,
                    "over_key": over.grouping_key if over is not None else None,
                    "over_at": over.shown_at if over is not None else None,
                }
            )
        return rows

    def check_marks(self, written: int, rows: list[dict[str, Any]]) -> None:
        """StaleWrite unless every mark was written (another writer marked a conversation first)."""
        if written < len(rows):
            raise StaleWrite(f"{len(rows) - written} repeat mark(s) changed meanwhile")

    def outcomes(self) -> list[bool]:
        """For each record: whether it was stored (False for a redelivery)."""
        return [i in self.stored for i in range(len(self.records))]


class SqlEventLog(SqlBase):
    @property
    def write_timeout(self) -> float:
        engine = self.engine
        return engine.write_timeout if isinstance(engine, PostgresEngine | SqliteEngine) else INGEST_WRITE_TIMEOUT

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
        try:
            return await self._record_events(list(records))
        except Exception as exc:
            if _not_answering(exc):
                raise StoreNotAnswering(f"{type(exc).__name__}: {exc}") from exc
            raise

    async def _record_events(self, records: list[EventRecord]) -> list[bool]:
        engine = self.engine
        if isinstance(engine, SqliteEngine) and engine.has_raw_writer:
            dialect = engine.dialect
            return await engine.run_raw_write(lambda raw: self._record(SqliteStatements(raw, dialect), records))
        if isinstance(engine, PostgresEngine):
            return await engine.run_raw_write(lambda raw: self._record_on_asyncpg(AsyncpgStatements(raw), records))
        return await run_write(engine, lambda conn: self._record(SqlAlchemyStatements(conn), records))

    def _record(self, statements: BatchStatements, records: list[EventRecord]) -> list[bool]:
        batch = _Batch(records)
        batch.inserted(statements.insert_new(received_events, "dedupe_key", batch.receipts()))
        fresh, changed = batch.card_rows()
        written = statements.insert_new(card_states, "grouping_key", fresh) | statements.compare_and_set(changed)
        batch.check_cards(written)
        statements.insert(deliveries, batch.delivery_rows())
        if marks := batch.repeat_mark_rows():
            batch.check_marks(statements.set_marks(marks), marks)
        return batch.outcomes()

    async def _record_on_asyncpg(self, statements: AsyncpgStatements, records: list[EventRecord]) -> list[bool]:
        """:meth:`_record`, on PostgreSQL straight through asyncpg (see :mod:`adapters.sql.postgres_batch`)."""
        batch = _Batch(records)
        batch.inserted(await statements.insert_new(received_events, "dedupe_key", batch.receipts()))
        fresh, changed = batch.card_rows()
        written = await statements.insert_new(card_states, "grouping_key", fresh)
        batch.check_cards(written | await statements.compare_and_set(changed))
        await statements.insert(deliveries, batch.delivery_rows())
        if marks := batch.repeat_mark_rows():
            batch.check_marks(await statements.set_marks(marks), marks)
        return batch.outcomes()

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

    async def recent_events(self, limit: int) -> list[ReceivedEvent]:
        query = (
            select(received_events)
            .where(received_events.c.source.not_in(CHAT_RECEIPT_SOURCES))
            .order_by(received_events.c.received_at.desc(), received_events.c.id.desc())
            .limit(max(0, limit))
        )

        def read(conn: Connection) -> list[ReceivedEvent]:
            return [
                ReceivedEvent(row.dedupe_key, row.source, row.kind, must_utc(row.received_at), row.payload)
                for row in conn.execute(query)
            ]

        return await run_read(self.engine, read)

    async def forget_events_before(self, cutoff: datetime) -> int:
        return await forget_rows(self.engine, received_events, received_events.c.received_at < cutoff)

    async def get_repeat_marks(
        self, keys: Sequence[tuple[ConversationAddress, str]]
    ) -> dict[tuple[ConversationAddress, str], RepeatMark]:
        if not keys:
            return {}
        wanted = [(conversation.platform, conversation.conversation_id, key) for conversation, key in keys]
        stored_key = tuple_(repeat_marks.c.platform, repeat_marks.c.conversation_id, repeat_marks.c.repeat_key)

        def read(conn: Connection) -> dict[tuple[ConversationAddress, str], RepeatMark]:
            found: dict[tuple[ConversationAddress, str], RepeatMark] = {}
            for chunk in chunks(wanted):
                for row in conn.execute(select(repeat_marks).where(stored_key.in_(chunk))):
                    conversation = address(row.platform, row.conversation_id)
                    found[(conversation, row.repeat_key)] = RepeatMark(
                        conversation, row.repeat_key, row.grouping_key, must_utc(row.shown_at)
                    )
            return found

        return await run_read(self.engine, read)

    async def forget_repeat_marks_before(self, cutoff: datetime) -> int:
        return await forget_rows(self.engine, repeat_marks, repeat_marks.c.shown_at < cutoff)


# What a database that did not take a write says, rather than refusing what was written: unreachable, a lock held
# past the write's time limit, a statement or connection that timed out or was cut off.
_NOT_ANSWERING = (
    OSError,  # (ConnectionError, TimeoutError)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
)


def _not_answering(error: BaseException) -> bool:
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    if isinstance(cause, sqlite3.OperationalError):
        return any(word in str(cause).lower() for word in ("locked", "busy", "unable to open", "disk i/o"))
    return isinstance(cause, _NOT_ANSWERING)
