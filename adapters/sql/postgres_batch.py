"""The statements of the ingest group commit on PostgreSQL, straight on asyncpg.

Through SQLAlchemy, PostgreSQL's ``INSERT … ON CONFLICT DO NOTHING RETURNING`` is compiled again for
every batch (the construct is not cacheable) and sent as one multi-row statement whose text changes with
the batch's size, and every statement crosses the async bridge: together they cost more than the rest
of a delivery. Here each statement takes its rows as arrays (``unnest``), so its text depends only on
the columns: asyncpg prepares it once per connection and PostgreSQL plans it once. Values are converted
as SQLAlchemy's JSON columns convert them (:func:`adapters.sql.engine.json_dumps`), so every other query
reads the rows as usual.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Table, Text

from adapters.sql.batch_statements import MARK_COLUMNS, MARK_KEY, first_and_later_marks
from adapters.sql.engine import json_dumps
from adapters.sql.tables import card_states, repeat_marks

_SQL: dict[tuple[str, tuple[str, ...], str | None], str] = {}

# A card's compare-and-set: each new state only over the version it was merged on.
_COMPARE_AND_SET = """
UPDATE card_states AS c SET version = v.version, state = v.state, updated_at = v.at
FROM unnest($1::varchar[], $2::integer[], $3::integer[], $4::json[], $5::timestamptz[])
    AS v(key, expected, version, state, at)
WHERE c.grouping_key = v.key AND c.version = v.expected
RETURNING c.grouping_key
"""

# A repeat mark's compare-and-set: each new card only over the mark the planner saw.
_SET_MARKS = """
UPDATE repeat_marks AS m SET grouping_key = v.grouping_key, shown_at = v.shown_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::timestamptz[])
    AS v(platform, conversation_id, repeat_key, grouping_key, shown_at, over_key, over_at)
WHERE m.platform = v.platform AND m.conversation_id = v.conversation_id AND m.repeat_key = v.repeat_key
    AND m.grouping_key = v.over_key AND m.shown_at = v.over_at
RETURNING m.repeat_key
"""


def _array_type(table: Table, column: str) -> str:
    """The PostgreSQL array type that carries ``table.column``'s values."""
    kind = table.c[column].type
    if isinstance(kind, JSON):
        return "json[]"
    if isinstance(kind, DateTime):
        return "timestamptz[]" if kind.timezone else "timestamp[]"
    if isinstance(kind, BigInteger):
        return "bigint[]"
    if isinstance(kind, Integer):
        return "integer[]"
    if isinstance(kind, String | Text):
        return "text[]"
    raise TypeError(f"{table.name}.{column}: no array type for {kind!r}")


def _insert_sql(table: Table, columns: tuple[str, ...], key: str | None) -> str:
    """``INSERT … SELECT * FROM unnest(<one array per column>)``, skipping rows whose ``key`` is taken."""
    cache_key = (table.name, columns, key)
    if cache_key not in _SQL:
        arrays = ", ".join(f"${n}::{_array_type(table, c)}" for n, c in enumerate(columns, 1))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"  # noqa: S608
        if key is not None:
            sql += f" ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
        _SQL[cache_key] = sql
    return _SQL[cache_key]


def _column(table: Table, column: str, rows: list[dict[str, Any]]) -> list[Any]:
    if isinstance(table.c[column].type, JSON):
        return [json_dumps(row[column]) for row in rows]
    return [row[column] for row in rows]


class AsyncpgStatements:
    """The statements on an asyncpg connection inside a transaction (the same four as
    :class:`adapters.sql.batch_statements.BatchStatements`, awaited)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def insert_new(self, table: Table, key: str, rows: list[dict[str, Any]]) -> set[str]:
        """Insert the rows whose ``key`` is not in the table yet; the keys inserted."""
        if not rows:
            return set()
        columns = tuple(rows[0])
        arrays = [_column(table, c, rows) for c in columns]
        found = await self.connection.fetch(_insert_sql(table, columns, key), *arrays)
        return {str(row[0]) for row in found}

    async def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert every row (all rows have the same columns)."""
        if rows:
            columns = tuple(rows[0])
            arrays = [_column(table, c, rows) for c in columns]
            await self.connection.execute(_insert_sql(table, columns, None), *arrays)

    async def compare_and_set(self, rows: list[dict[str, Any]]) -> set[str]:
        """Card states ``{key, expected, version, state, at}`` written over ``expected``; the keys written."""
        if not rows:
            return set()
        times: list[datetime] = [row["at"] for row in rows]
        found = await self.connection.fetch(
            _COMPARE_AND_SET,
            [row["key"] for row in rows],
            [row["expected"] for row in rows],
            [row["version"] for row in rows],
            _column(card_states, "state", rows),
            times,
        )
        return {str(row[0]) for row in found}

    async def set_marks(self, rows: list[dict[str, Any]]) -> int:
        """Repeat marks, each inserted where ``over_key`` is None and no mark is, else written over the mark
        ``over_key`` and ``over_at`` name; how many were written."""
        first, later = first_and_later_marks(rows)
        written = 0
        if first:
            arrays = [_column(repeat_marks, c, first) for c in MARK_COLUMNS]
            written += len(
                await self.connection.fetch(_insert_sql(repeat_marks, MARK_COLUMNS, ", ".join(MARK_KEY)), *arrays)
            )
        if later:
            columns = (*MARK_COLUMNS, "over_key", "over_at")
            written += len(await self.connection.fetch(_SET_MARKS, *([row[c] for row in later] for c in columns)))
        return written
