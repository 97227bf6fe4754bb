"""Database fixtures: a fresh SQLite file, or a fresh schema in the local PostgreSQL server.

PostgreSQL is at ``HANDOFF_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Where it is not reachable the tests that need it skip, unless ``HANDOFF_REQUIRE_POSTGRES=1``, when
they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("HANDOFF_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("HANDOFF_REQUIRE_POSTGRES") == "1"


async def _postgres_execute(statement: str) -> None:
    import asyncpg

    url = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


# How long dropping a test's schema waits for a lock before it ends the sessions holding one there
DROP_LOCK_TIMEOUT = "5s"
_HOLDERS = """
SELECT DISTINCT l.pid FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()
"""


async def _drop_schema(schema: str) -> None:
    """Drop a test's schema. A session the test left inside a transaction there (a background task cut off in
    the middle of a read when the test's event loop ended) would hold the drop, and the whole run, for ever: after
    :data:`DROP_LOCK_TIMEOUT` those sessions are ended, with a warning naming the schema, and the drop goes on."""
    import asyncpg

    url = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(f"SET lock_timeout = '{DROP_LOCK_TIMEOUT}'")
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            return
        except asyncpg.LockNotAvailableError:
            holders = [row["pid"] for row in await conn.fetch(_HOLDERS, schema)]
        for pid in holders:
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
        warnings.warn(f"schema {schema}: ended {len(holders)} session(s) the test left in a transaction", stacklevel=1)
        await conn.execute("SET lock_timeout = 0")
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


def _postgres_problem() -> str | None:
    try:
        asyncio.run(_postgres_execute("SELECT 1"))
    except Exception as exc:  # any failure to reach it means "not available here"
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(exc).__name__}: {exc})"
    return None


_checked: list[str | None] = []


def postgres_or_skip() -> None:
    if not _checked:
        _checked.append(_postgres_problem())
    problem = _checked[0]
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"HANDOFF_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A store URL for a new SQLite file."""
    return f"sqlite:///{tmp_path / 'handoff.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A store URL for a new, empty schema in the local PostgreSQL database, dropped afterwards."""
    postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_execute(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        asyncio.run(_drop_schema(schema))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store URL kind in turn: the same test runs on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[object]:
    """A migrated SqlStore on each database kind."""
    from adapters.sql import SqlStore

    opened = await SqlStore.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()
