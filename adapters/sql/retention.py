"""Forgetting old rows a few at a time, so that a long backlog never holds the write lock for long."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import ColumnElement, Table, delete, select, tuple_
from sqlalchemy.engine import Connection
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
    return await forget_in_chunks(engine, lambda conn: int(conn.execute(statement).rowcount or 0), chunk)


async def forget_in_chunks(engine: AsyncEngine, forget_chunk: Callable[[Connection], int], chunk: int) -> int:
    """Run ``forget_chunk`` (which forgets at most ``chunk`` things and says how many) in one transaction
    after another until one forgets fewer than ``chunk``; how many in all."""
    forgotten = 0
    while True:
        count = await run_write(engine, forget_chunk)
        forgotten += count
        if count < chunk:
            return forgotten
        await asyncio.sleep(0)
