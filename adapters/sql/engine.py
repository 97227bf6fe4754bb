"""Async engines for SQLite (WAL, one writer at a time) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def normalize_url(url: str) -> str:
    """Pick the async driver: ``sqlite://`` → aiosqlite, ``postgres(ql)://`` → asyncpg."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine_for(url: str) -> AsyncEngine:
    """An engine for a store URL; a SQLite file's folder is created if missing."""
    url = normalize_url(url)
    if not is_sqlite(url):
        parsed = make_url(url)
        schema = parsed.query.get("schema")
        connect_args: dict[str, Any] = {}
        if schema:
            # ?schema=name keeps Handoff's tables in their own PostgreSQL schema
            parsed = parsed.difference_update_query(["schema"])
            connect_args["server_settings"] = {"search_path": str(schema)}
        return create_async_engine(parsed, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args=connect_args)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers the write lock, which deadlocks concurrent writers;
    # take the write lock at BEGIN instead, and let waiters queue on busy_timeout.
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
