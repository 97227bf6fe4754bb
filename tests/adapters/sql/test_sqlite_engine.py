"""The SQLite engine's raw writes: on the event loop when the lock is free, never blocking it when not."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.sql.engine import SqliteEngine, create_engine_for


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[SqliteEngine]:
    created = create_engine_for(f"sqlite:///{tmp_path / 'raw.db'}")
    assert isinstance(created, SqliteEngine)
    await created.run_raw_write(lambda raw: raw.execute("CREATE TABLE notes (text TEXT NOT NULL)"))
    yield created
    await created.dispose()


def _notes(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT text FROM notes ORDER BY rowid")]


async def test_a_raw_write_commits_and_a_failing_one_leaves_nothing(engine: SqliteEngine, tmp_path: Path) -> None:
    await engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('kept')"))

    def half_then_fail(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO notes VALUES ('rolled back')")
        raise ValueError("the plan was wrong")

    with pytest.raises(ValueError):
        await engine.run_raw_write(half_then_fail)
    await engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('after')"))
    assert _notes(tmp_path / "raw.db") == ["kept", "after"]


async def test_a_write_waits_off_the_loop_while_another_process_holds_the_lock(
    engine: SqliteEngine, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "raw.db", isolation_level=None)  # as another process would
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes VALUES ('other process')")
    write = asyncio.create_task(engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('ours')")))

    # the loop keeps running while our write waits for the lock: waiting on the loop would stall it for the
    # busy timeout (30 s), far longer than any pause a busy machine or the garbage collector makes
    longest_stall = 0.0
    started = before = time.monotonic()
    while before - started < 0.3:
        await asyncio.sleep(0.01)
        now = time.monotonic()
        longest_stall, before = max(longest_stall, now - before), now
    assert not write.done()
    assert longest_stall < 2.0

    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(write, 10)
    assert _notes(tmp_path / "raw.db") == ["other process", "ours"]
    # and the next write, with the lock free, runs at once
    await engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('next')"))
    assert _notes(tmp_path / "raw.db")[-1] == "next"


async def test_raw_writes_are_checkpointed_into_the_database_file(engine: SqliteEngine, tmp_path: Path) -> None:
    """The raw connection never checkpoints by itself; the engine does, so the log does not grow forever."""
    database = tmp_path / "raw.db"
    await engine.run_raw_write(lambda raw: raw.executemany("INSERT INTO notes VALUES (?)", [("x" * 4000,)] * 500))
    assert database.stat().st_size < 100_000  # the rows are in the log, not yet in the file
    await asyncio.sleep(1.1)
    await engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('tick')"))
    for _ in range(100):  # the checkpoint runs on the writer thread: give it up to 5 s
        if database.stat().st_size >= 2_000_000:
            break
        await asyncio.sleep(0.05)
    assert database.stat().st_size >= 2_000_000


@pytest.mark.parametrize("limit", [64, None], ids=["with a limit", "without"])
async def test_the_log_starts_over_while_writes_never_pause(
    engine: SqliteEngine, tmp_path: Path, limit: int | None
) -> None:
    """Under sustained writes a passive checkpoint never completes; past the limit one holds the write lock,
    so the log is written over instead of growing for as long as the writes go on."""
    engine.wal_limit_pages = 1 << 62 if limit is None else limit  # (no limit: as before, the log grows)
    log = tmp_path / "raw.db-wal"
    written = 0
    # a count of writes, not a time: a slow machine writes as much, only later
    for _ in range(1500):
        await engine.run_raw_write(lambda raw: raw.executemany("INSERT INTO notes VALUES (?)", [("x" * 1000,)] * 4))
        written += 4000
        await asyncio.sleep(0)  # as the server does between batches
    if limit is None:
        # the log keeps growing (a passive checkpoint that completes in a lull may start it over once)
        assert log.stat().st_size > written / 2
    else:
        # the limit, plus what the writes add in the 50 commits before the next checkpoint sees it was passed
        assert log.stat().st_size < written / 3
    await engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('last')"))
    assert _notes(tmp_path / "raw.db")[-1] == "last"


async def test_every_connection_waits_for_the_disk_at_commit(engine: SqliteEngine) -> None:
    """An acknowledged event must survive a power cut, not only a crash: synchronous=FULL (2)."""
    raw_level = await engine.run_raw_write(lambda raw: raw.execute("PRAGMA synchronous").fetchone()[0])
    pooled_level = await engine.run_read(lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
    async with engine.connect() as conn:
        async_level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one()
    assert (raw_level, pooled_level, async_level) == (2, 2, 2)


@pytest.mark.parametrize(("limit", "committed_on"), [(math.inf, "MainThread"), (0.0, "handoff-sqlite")])
async def test_the_commit_runs_on_the_loop_thread_unless_the_disk_is_slow(
    engine: SqliteEngine, tmp_path: Path, limit: float, committed_on: str
) -> None:
    """A fast disk's fsync is cheaper to wait for than a hop to the writer thread; a slow one's is not."""
    # as if every commit had taken less than the limit, or longer (a busy machine's disk is sometimes slow)
    engine.inline_commit_limit = limit
    statements: list[tuple[str, str]] = []

    def write(raw: sqlite3.Connection) -> None:
        raw.set_trace_callback(lambda sql: statements.append((sql, threading.current_thread().name)))
        raw.execute("INSERT INTO notes VALUES ('traced')")

    await engine.run_raw_write(write)
    await engine.run_raw_write(lambda raw: raw.set_trace_callback(None))
    (commit_thread,) = {name for sql, name in statements if sql == "COMMIT"}
    assert commit_thread.startswith(committed_on)
    assert {name for sql, name in statements if sql.startswith("INSERT")} == {"MainThread"}
    assert _notes(tmp_path / "raw.db") == ["traced"]


@pytest.mark.parametrize("limit", [None, 0.0], ids=["commit on the loop", "commit on the writer thread"])
async def test_a_commit_that_fails_leaves_nothing_and_the_next_write_goes_through(
    engine: SqliteEngine, tmp_path: Path, limit: float | None
) -> None:
    """A failure found only at COMMIT (here a deferred foreign key) is rolled back, not left open."""
    if limit is not None:
        engine.inline_commit_limit = limit

    def schema(raw: sqlite3.Connection) -> None:
        raw.execute("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        raw.execute("CREATE TABLE children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)")

    await engine.run_raw_write(schema)

    def orphan(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO notes VALUES ('with the orphan')")
        raw.execute("INSERT INTO children VALUES (7)")  # accepted now, refused at COMMIT

    with pytest.raises(sqlite3.IntegrityError):
        await engine.run_raw_write(orphan)
    await engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('next')"))
    assert _notes(tmp_path / "raw.db") == ["next"]


async def test_a_write_another_process_holds_up_fails_after_its_timeout_and_the_next_goes_through(
    engine: SqliteEngine, tmp_path: Path
) -> None:
    engine.write_timeout = 0.5
    other = sqlite3.connect(tmp_path / "raw.db", isolation_level=None)  # as another process would
    other.execute("BEGIN EXCLUSIVE")
    write = asyncio.ensure_future(engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('held')")))
    # a bound on the test, not a timing assertion: before, the write waited 30 s for the lock
    await asyncio.wait({write}, timeout=20)
    other.execute("ROLLBACK")
    other.close()
    assert write.done()
    assert isinstance(write.exception(), sqlite3.OperationalError)

    await engine.run_raw_write(lambda raw: raw.execute("INSERT INTO notes VALUES ('next')"))
    assert _notes(tmp_path / "raw.db") == ["next"]
