"""What every part of the SQL store shares: the engine, the dialect, and row conversions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.records import ConversationAddress, Platform


class SqlBase:
    """Holds the engine; each concept's mixin adds its queries."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"


def storable(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL cannot store in a text column (SQLite could, but
    both stores keep the same)."""
    return text.replace("\x00", "") if "\x00" in text else text


def utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; Handoff only deals in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def must_utc(value: datetime) -> datetime:
    result = utc(value)
    assert result is not None
    return result


def address(platform: str, conversation_id: str) -> ConversationAddress:
    checked: Platform = "teams" if platform == "teams" else "slack"
    return ConversationAddress(checked, conversation_id)


def upsert(dialect: str, table: Table, values: dict[str, Any], keys: list[str], kept: Sequence[str] = ()) -> Any:
    """INSERT … ON CONFLICT (keys) DO UPDATE for SQLite and PostgreSQL alike; the columns in ``kept`` are
    only set by the insert (an existing row keeps its value)."""
    make = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = make(table).values(**values)
    changed = {k: statement.excluded[k] for k in values if k not in keys and k not in kept}
    return statement.on_conflict_do_update(index_elements=keys, set_=changed)


def insert_unless_present(dialect: str, table: Table, values: dict[str, Any], keys: list[str]) -> Any:
    """INSERT … ON CONFLICT (keys) DO NOTHING RETURNING the keys: no row back means it was there."""
    make = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = make(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    return statement.returning(*(table.c[k] for k in keys))
