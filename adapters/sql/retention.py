"""Forgetting old rows a few at a time, so that a long backlog never holds the write lock for long."""

from __future__ import annotations

import asyncio

from sqlalchemy import ColumnElement, Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import run_write

# Rows deleted per transaction: on SQLite a few milliseconds of holding the one write lock, so the hooks'
# group commits waiting behind it are hardly held up (a first pass over months of rows deletes 100,000s).
FORGET_CHUNK = 200


async def forget_rows(
    engine: AsyncEngine, table: Table, condition: ColumnElement[bool], chunk: int = FORGET_CHUNK
) -> int:
    """Delete the rows of ``table`` that meet ``condition``, ``chunk`` rows per transaction; how many.

    Writes waiting for the lock (the ingest's) go between two transactions.
    """
    key = list(table.primary_key.columns)
    doomed = select(*key).where(condition).limit(chunk)
    statement = delete(table).where((key[0] if len(key) == 1 else tuple_(*key)).in_(doomed))
    forgotten = 0
    while True:
        count = await run_write(engine, lambda conn: int(conn.execute(statement).rowcount or 0))
        forgotten += count
        if count < chunk:
            return forgotten
        await asyncio.sleep(0)
