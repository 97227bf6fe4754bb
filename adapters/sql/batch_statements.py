"""The four statements of the ingest group commit on SQLite: through SQLAlchemy, or straight on its driver.

:meth:`adapters.sql.events.SqlEventLog.record_events` writes a batch of events with four kinds of
statement: insert the rows whose key is new, insert rows, compare-and-set card states, and compare-and-set
repeat marks (only for batches that have them). On SQLite in
memory they run through SQLAlchemy; on PostgreSQL straight on asyncpg (:mod:`adapters.sql.postgres_batch`).
On a SQLite file they run on the engine's own
``sqlite3`` connection: a batch is a few microseconds of SQLite's work, and SQLAlchemy's
per-statement and per-transaction machinery cost ten times that, which the busiest path of Handoff
cannot afford. Values are converted by SQLAlchemy's own bind processors for the dialect, so the rows
are exactly what SQLAlchemy would have written, and every other query reads them as usual.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect

from adapters.sql.tables import card_states, repeat_marks

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
_COMPARE_AND_SET_SQL = (
    "UPDATE card_states SET version = ?, state = ?, updated_at = ? WHERE grouping_key = ? AND version = ?"
)

MARK_KEY = ("platform", "conversation_id", "repeat_key")
MARK_COLUMNS = (*MARK_KEY, "grouping_key", "shown_at")
# A repeat mark's compare-and-set: the new card only over the mark the planner saw.
_SET_MARK = (
    update(repeat_marks)
    .where(
        *(repeat_marks.c[column] == bindparam(f"the_{column}") for column in MARK_KEY),
        repeat_marks.c.grouping_key == bindparam("over_key"),
        repeat_marks.c.shown_at == bindparam("over_at", type_=repeat_marks.c.shown_at.type),
    )
    .values(
        grouping_key=bindparam("new_key", type_=repeat_marks.c.grouping_key.type),
        shown_at=bindparam("new_at", type_=repeat_marks.c.shown_at.type),
    )
)
_SET_MARK_SQL = (
    "UPDATE repeat_marks SET grouping_key = ?, shown_at = ? WHERE platform = ? AND conversation_id = ? "
    "AND repeat_key = ? AND grouping_key = ? AND shown_at = ?"
)


def first_and_later_marks(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The marks written where none was (their stored columns only), and those written over another."""
    first = [{c: row[c] for c in MARK_COLUMNS} for row in rows if row["over_key"] is None]
    return first, [row for row in rows if row["over_key"] is not None]


Item = TypeVar("Item", bound=Hashable)


def chunks(items: Sequence[Item]) -> list[Sequence[Item]]:
    """The distinct items, in lists short enough for one ``IN (...)``."""
    unique = list(dict.fromkeys(items))
    return [unique[i : i + CHUNK] for i in range(0, len(unique), CHUNK)]


def new_rows(
    table: Table, key: str, rows: list[dict[str, Any]], run: Callable[[str, tuple[str, ...]], Iterable[Any]]
) -> dict[str, dict[str, Any]]:
    """The rows whose ``key`` is not in ``table`` yet (the first of equal keys), by key; ``run`` runs SQL.

    Safe only inside a SQLite write transaction: it holds the write lock, so nothing can appear between the
    look and the insert (and plain statements are compiled once, unlike ON CONFLICT ones).
    """
    present: set[str] = set()
    for chunk in chunks([row[key] for row in rows]):
        query = f"SELECT {key} FROM {table.name} WHERE {key} IN ({', '.join('?' * len(chunk))})"  # noqa: S608
        present.update(found for (found,) in run(query, tuple(chunk)))
    return {row[key]: row for row in rows if row[key] not in present}


class BatchStatements(Protocol):
    """What one group-commit transaction runs."""

    def insert_new(self, table: Table, key: str, rows: list[dict[str, Any]]) -> set[str]:
        """Insert the rows whose ``key`` is not in the table yet (the first of equal keys); the keys inserted."""
        ...

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert every row (all rows have the same columns)."""
        ...

    def compare_and_set(self, rows: list[dict[str, Any]]) -> set[str]:
        """Card states ``{key, expected, version, state, at}`` written over ``expected``; the keys written."""
        ...

    def set_marks(self, rows: list[dict[str, Any]]) -> int:
        """Repeat marks (:meth:`adapters.sql.events._Batch.repeat_mark_rows`), each inserted where ``over_key``
        is None and no mark is, else written over the mark ``over_key`` and ``over_at`` name; how many were
        written."""
        ...


class SqlAlchemyStatements:
    """The statements through a SQLAlchemy connection to SQLite (a database in memory)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert_new(self, table: Table, key: str, rows: list[dict[str, Any]]) -> set[str]:
        if not rows:
            return set()
        fresh = new_rows(table, key, rows, self.conn.exec_driver_sql)
        if fresh:
            self.conn.execute(insert(table), list(fresh.values()))
        return set(fresh)

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(table), rows)

    def compare_and_set(self, rows: list[dict[str, Any]]) -> set[str]:
        if not rows:
            return set()
        # SQLite sums an executemany's rowcount: all of them were written, or the transaction is undone
        written = self.conn.execute(_COMPARE_AND_SET, rows).rowcount == len(rows)
        return {row["key"] for row in rows} if written else set()

    def set_marks(self, rows: list[dict[str, Any]]) -> int:
        first, later = first_and_later_marks(rows)
        written = 0
        if first:
            statement = sqlite_insert(repeat_marks).on_conflict_do_nothing(index_elements=list(MARK_KEY))
            written += self.conn.execute(statement, first).rowcount
        if later:
            values = [
                {
                    **{f"the_{column}": row[column] for column in MARK_KEY},
                    "over_key": row["over_key"],
                    "over_at": row["over_at"],
                    "new_key": row["grouping_key"],
                    "new_at": row["shown_at"],
                }
                for row in later
            ]
            written += self.conn.execute(_SET_MARK, values).rowcount
        return written


Processor = Callable[[Any], Any] | None
_PROCESSORS: dict[tuple[str, str, str], Processor] = {}


def _processor(dialect: Dialect, table: Table, column: str) -> Processor:
    """SQLAlchemy's conversion of a Python value for ``table.column`` (datetimes, JSON), cached."""
    key = (dialect.name, table.name, column)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = dialect.type_descriptor(table.c[column].type).bind_processor(dialect)
    return _PROCESSORS[key]


class SqliteStatements:
    """The statements on a ``sqlite3`` connection that holds the write lock (``BEGIN IMMEDIATE``)."""

    def __init__(self, raw: sqlite3.Connection, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def _values(self, table: Table, rows: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
        columns = list(rows[0])
        processors = [_processor(self.dialect, table, column) for column in columns]
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
        # the rows of a batch share their times: each distinct one is converted once
        converted: dict[tuple[int, datetime], Any] = {}

        def convert(value: Any, processor: Callable[[Any], Any]) -> Any:
            if type(value) is not datetime:
                return processor(value)
            key = (id(processor), value)
            if key not in converted:
                converted[key] = processor(value)
            return converted[key]

        values = [
            tuple(row[c] if p is None else convert(row[c], p) for c, p in zip(columns, processors, strict=True))
            for row in rows
        ]
        return sql, values

    def insert_new(self, table: Table, key: str, rows: list[dict[str, Any]]) -> set[str]:
        if not rows:
            return set()
        fresh = new_rows(table, key, rows, self.raw.execute)
        if fresh:
            self.insert(table, list(fresh.values()))
        return set(fresh)

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.raw.executemany(*self._values(table, rows))

    def compare_and_set(self, rows: list[dict[str, Any]]) -> set[str]:
        if not rows:
            return set()
        state = _processor(self.dialect, card_states, "state")
        at = _processor(self.dialect, card_states, "updated_at")
        assert state is not None and at is not None
        values = [(row["version"], state(row["state"]), at(row["at"]), row["key"], row["expected"]) for row in rows]
        # sqlite3 sums an executemany's rowcount: all of them were written, or the transaction is undone
        written = self.raw.executemany(_COMPARE_AND_SET_SQL, values).rowcount == len(rows)
        return {row["key"] for row in rows} if written else set()

    def set_marks(self, rows: list[dict[str, Any]]) -> int:
        first, later = first_and_later_marks(rows)
        written = 0
        if first:
            sql, values = self._values(repeat_marks, first)
            written += self.raw.executemany(f"{sql} ON CONFLICT ({', '.join(MARK_KEY)}) DO NOTHING", values).rowcount
        if later:
            at = _processor(self.dialect, repeat_marks, "shown_at")
            assert at is not None
            values = [
                (
                    row["grouping_key"],
                    at(row["shown_at"]),
                    *(row[c] for c in MARK_KEY),
                    row["over_key"],
                    at(row["over_at"]),
                )
                for row in later
            ]
            written += self.raw.executemany(_SET_MARK_SQL, values).rowcount
        return written
