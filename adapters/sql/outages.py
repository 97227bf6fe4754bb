"""Which errors are the store out of reach for a while (an outage the work retried later gets through), rather
than a mistake in Handoff or in its database (a missing table, a statement the database refuses)."""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapters.sql.engine import connection_lost
from bot.ports import StoreNotAnswering

# SQLite's words for a database another process holds, or a disk that failed for a moment.
SQLITE_PASSING = ("database is locked", "database table is locked", "disk i/o error")
# PostgreSQL's SQLSTATEs for a server too busy to take more: too many connections, out of memory or disk.
POSTGRES_BUSY = "53"


def store_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is the store out of reach: a connection lost or refused, a session the
    server ended, the database not answering in time, the pool out of connections, a lock held elsewhere."""
    if connection_lost(error):
        return True
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, StoreNotAnswering | PoolTimeout | DisconnectionError):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, sqlite3.OperationalError) and str(cause).lower().startswith(SQLITE_PASSING):
            return True
        if isinstance(cause, asyncpg.PostgresError) and str(cause.sqlstate or "").startswith(POSTGRES_BUSY):
            return True
        cause = cause.orig if isinstance(cause, DBAPIError) and cause.orig is not None else cause.__cause__
    return False
