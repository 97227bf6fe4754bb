"""Async engines for SQLite (WAL, one writer at a time) and PostgreSQL (asyncpg).

SQLite allows one writer at a time. Write transactions (``engine.begin()``) take the write lock at
``BEGIN IMMEDIATE``; within a process they first queue on an asyncio lock, so that a waiting writer is
woken the moment the lock is free instead of sleeping in SQLite's busy handler (which backs off up to
100 ms between tries). Other processes still wait on ``busy_timeout``. Reads (``engine.connect()``)
take no lock: in WAL mode each statement reads a consistent snapshot beside the writer.

aiosqlite runs every call (cursor, execute, fetch, close) as its own hop to a thread. For the hot paths,
:func:`run_write` and :func:`run_read` run a whole synchronous function on one pysqlite connection in
one hop to a dedicated thread instead; on PostgreSQL (and SQLite in memory) they run the same function
through ``AsyncConnection.run_sync``, so a store method is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from adapters.sql.problems import NoDatabase
from bot.config import connect_timeout_seconds

T = TypeVar("T")

# The execution option that marks a connection's transaction as a write (see SqliteEngine.begin).
WRITE = "handoff_write"
BUSY_TIMEOUT_MS = 30_000
# How long the ingest's group commit waits on the database (SQLite: for another process's write lock; PostgreSQL:
# for each statement) before it fails: no longer than a hook waits for it (server.hook_timeout, 10 s unless set),
# whose sender has been asked to deliver again by then. The next group commit tries afresh. The ingest waits no
# longer for each read it makes before writing, through the pool (``Store.write_timeout``, see bot/ingest.py).
INGEST_WRITE_TIMEOUT = 10.0
# PostgreSQL: a statement not answered within this fails, and its connection is closed, so that a connection cut
# off without a word (a failover, a proxy that stopped passing bytes) does not hold up what waits on it for ever.
# Long enough for any migration.
COMMAND_TIMEOUT = 300.0
# A raw commit that usually takes less than this (a local disk's fsync) runs on the event loop's thread.
INLINE_COMMIT_LIMIT = 0.002
# PostgreSQL: the ingest's own connection is checked before a write when it has not been used for this long.
RAW_CHECK_AFTER_IDLE = 5.0
# The write-ahead log of raw writes is copied into the database file after this many raw commits, or
# after this long if there were fewer (a checkpoint costs the same at any speed: counted in commits, not
# seconds, its share of the work does not grow when Handoff runs slowly, as under a profiler).
CHECKPOINT_COMMITS = 50
CHECKPOINT_INTERVAL = 1.0
# A log that grew beyond this many pages since it last started over means the checkpoints are not catching
# up with a busy writer: the next one holds the write lock, so that it completes and the log starts over
# instead of growing for as long as the load lasts. (SQLite's own automatic checkpoint is at 1,000 pages.)
WAL_LIMIT_PAGES = 1000
# A log that grew beyond this in a burst is cut back to it when it starts over.
WAL_KEEP_BYTES = 16 * 1024 * 1024
log = logging.getLogger("handoff.store")


def json_dumps(value: Any) -> str:
    """JSON columns as text: orjson (several times faster on the ingest path), the standard library for
    what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


# How every engine writes and reads JSON columns (reads with the standard library, which keeps big integers).
JSON_CODEC: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json.loads}


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


def shown_url(url: str | URL) -> str:
    """A store URL fit for a message or a log line: its password hidden, its driver left out."""
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


class PostgresConnect(Protocol):
    """Opens a PostgreSQL connection (see :func:`postgres_connector`)."""

    def __call__(self, command_timeout: float = COMMAND_TIMEOUT) -> Awaitable[Any]: ...


def postgres_connector(url: URL) -> PostgresConnect:
    """How the pool opens a PostgreSQL connection for ``url``.

    asyncpg reads the URL the way libpq does (``sslmode``, ``sslrootcert``, ``application_name``,
    ``options``, ``target_session_attrs``; any other parameter is a server setting), so a URL that works
    with ``psql`` works here; SQLAlchemy alone would hand each parameter to ``asyncpg.connect`` as a
    keyword it does not take. Two parameters are read here: ``schema`` (Handoff's own: the tables live in
    that schema) and ``connect_timeout`` (seconds, as in libpq). ``connect(command_timeout)`` opens one whose
    statements fail when not answered within ``command_timeout`` seconds.
    """
    schema = url.query.get("schema")
    timeout = url.query.get("connect_timeout")
    plain = url.difference_update_query(["schema", "connect_timeout"]).set(drivername="postgresql")
    dsn = plain.render_as_string(hide_password=False)
    server_settings = {"search_path": str(schema)} if schema else None
    keywords: dict[str, Any] = {"timeout": connect_timeout_seconds(str(timeout))} if timeout else {}

    async def connect(command_timeout: float = COMMAND_TIMEOUT) -> Any:
        return await asyncpg.connect(dsn, server_settings=server_settings, command_timeout=command_timeout, **keywords)

    return connect


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine_for(url: str, create: bool = True) -> AsyncEngine:
    """An engine for a store URL; a SQLite file (and its folder) is created if missing, unless ``create`` is
    False: then :class:`NoDatabase` is raised instead."""
    url = normalize_url(url)
    if not is_sqlite(url):
        parsed = make_url(url)
        connector = postgres_connector(parsed)
        pooled = create_async_engine(
            parsed.set(query={}),
            async_creator=connector,  # (with COMMAND_TIMEOUT)
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            **JSON_CODEC,
        )
        schema = parsed.query.get("schema")
        return PostgresEngine(pooled.sync_engine, connector, str(schema) if schema else None)
    database = make_url(url).database
    in_memory = not database or database == ":memory:" or "mode=memory" in url
    file_engine = None
    if not in_memory and not create and not Path(str(database)).exists():
        raise NoDatabase(str(database))
    if not in_memory:
        Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
        # switch a new file to WAL once, before any pool connects: connections (of several replicas) that
        # open a new file together and each switch it can leave one unable to take the write lock
        with contextlib.closing(sqlite3.connect(str(database), timeout=BUSY_TIMEOUT_MS / 1000)) as first:
            _use_wal(first.cursor())
        # every use is on the one writer thread; dispose() may close it from another
        pysqlite_url = make_url(url).set(drivername="sqlite+pysqlite")
        file_engine = create_engine(
            pysqlite_url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **JSON_CODEC,
        )
        _configure_sqlite(file_engine)
    driver = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **JSON_CODEC)
    engine = SqliteEngine(driver.sync_engine, file_engine)
    if not in_memory:
        engine.file_identity = file_identity(Path(str(database)))
    _configure_sqlite(engine.sync_engine)
    return engine


class PostgresEngine(AsyncEngine):
    """A PostgreSQL engine with one more connection, outside the pool, for the busiest writes.

    :meth:`run_raw_write` runs the ingest group commit on it straight through asyncpg: no pool checkout
    and no ping before each batch, and the ingest never waits for a connection the pool lent to other
    work. Each of its statements fails when not answered within :attr:`write_timeout` seconds (a lock another
    session holds, a server or network gone silent). A connection that broke or timed out is closed, and the
    next write opens another.
    """

    __slots__ = ("_connect", "_raw", "_raw_lock", "_raw_used_at", "schema", "write_timeout")

    def __init__(self, sync_engine: Engine, connect: PostgresConnect, schema: str | None = None) -> None:
        super().__init__(sync_engine)
        self.schema = schema  # the URL's ?schema=, where the tables live
        self.write_timeout = INGEST_WRITE_TIMEOUT  # (read when the connection is opened)
        self._connect = connect
        self._raw: asyncpg.Connection | None = None
        self._raw_lock = asyncio.Lock()
        self._raw_used_at = 0.0

    async def run_raw_write(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction on the engine's own asyncpg connection: committed if it returns,
        rolled back if it raises. Writes wait for each other."""
        async with self._raw_lock:
            raw = await self._raw_connection()
            try:
                async with raw.transaction():
                    result = await fn(raw)
            except BaseException as error:
                if not _still_usable(raw, error):
                    self._forget_raw()
                raise
            self._raw_used_at = time.monotonic()
            return result

    async def _raw_connection(self) -> asyncpg.Connection:
        """The connection, opened if need be; after a quiet spell it is checked first (the server may have
        restarted meanwhile), as the pool checks its connections, so that the next write does not fail."""
        if self._raw is not None and time.monotonic() - self._raw_used_at > RAW_CHECK_AFTER_IDLE:
            try:
                await self._raw.execute("SELECT 1")
            except Exception:  # whatever the state of a connection that fails this, it is not kept
                self._forget_raw()
        if self._raw is None or self._raw.is_closed():
            async with asyncio.timeout(self.write_timeout):  # (a server gone silent may not even answer that)
                self._raw = await self._connect(self.write_timeout)
        assert self._raw is not None
        return self._raw

    def _forget_raw(self) -> None:
        if self._raw is not None:
            self._raw.terminate()
            self._raw = None

    async def dispose(self, close: bool = True) -> None:
        async with self._raw_lock:
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._raw.close(), 5)
                self._raw = None
        await super().dispose(close)


def _still_usable(raw: asyncpg.Connection, error: BaseException) -> bool:
    """Whether a connection is worth keeping after a write failed with ``error``: the server refused a
    statement or the write itself gave up (a lost compare-and-set), and the transaction was rolled back;
    not when the connection was lost or cut off in the middle of an exchange."""
    if not isinstance(error, Exception) or connection_lost(error):
        return False
    return not raw.is_closed() and not raw.is_in_transaction()


# The SQLSTATE classes of a PostgreSQL error that ends the session: 08 (connection exception) and 57P (the server
# shutting down, a session ended by pg_terminate_backend, the server not accepting connections yet).
SESSION_ENDED_STATES = ("08", "57P")


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) says that its PostgreSQL connection is gone or can no longer be used:
    the network failed, the server ended the session, or asyncpg's side of the exchange was left mid-operation.

    The last is what the server ending a session (``pg_terminate_backend``, a restart) does to a connection lent
    from the pool between two statements (or just after its check): asyncpg reads the server's goodbye while no
    operation waits for it, and the next statement fails with "cannot switch to state …; another operation (2) is
    in progress" rather than saying that the connection was closed. asyncpg closes it then, and the pool does not
    lend it again; the statement's work is to be tried again on another."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, asyncpg.InterfaceError | asyncpg.InternalClientError | OSError):
            return True
        if isinstance(cause, asyncpg.PostgresError) and str(cause.sqlstate or "").startswith(SESSION_ENDED_STATES):
            return True
        cause = cause.orig if isinstance(cause, DBAPIError) and cause.orig is not None else cause.__cause__
    return False


def file_identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of the file at ``path``, or None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class SqliteEngine(AsyncEngine):
    """An engine whose write transactions run one at a time in this process.

    ``begin()`` is a write transaction. :meth:`run_write` and :meth:`run_read` run a synchronous
    function on the database file in one hop to the writer thread.
    """

    __slots__ = (
        "_checkpoint",
        "_checkpointed_at",
        "_commit_seconds",
        "_commits_since_checkpoint",
        "_file",
        "_raw",
        "_thread",
        "_writers",
        "file_identity",
        "inline_commit_limit",
        "wal_limit_pages",
        "write_timeout",
    )

    def __init__(self, sync_engine: Engine, file_engine: Engine | None = None) -> None:
        super().__init__(sync_engine)
        self._writers = asyncio.Lock()
        self._file = file_engine
        self._raw: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpointed_at = 0.0
        self._commits_since_checkpoint = 0
        # how long a raw commit takes, smoothed; while under the limit, commits run on the loop's thread
        self._commit_seconds = 0.0
        self.inline_commit_limit = INLINE_COMMIT_LIMIT
        self.wal_limit_pages = WAL_LIMIT_PAGES
        # how long a raw write waits for another process to release the write lock before it fails
        self.write_timeout = INGEST_WRITE_TIMEOUT
        # the device and inode of the database file when it was opened (None in memory)
        self.file_identity: tuple[int, int] | None = None

    def file_in_place(self) -> bool:
        """Whether the database file this engine opened is still the one at its path: an open file that was
        deleted (or replaced) still answers, but nothing written to it outlives the process."""
        if self.file_identity is None or self._file is None:
            return True
        return file_identity(Path(str(self._file.url.database))) == self.file_identity

    @property
    def has_raw_writer(self) -> bool:
        """Whether :meth:`run_raw_write` is available (a database file, not one in memory)."""
        return self._file is not None

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self._writers:
            conn = self.connect()
            async with conn:
                await conn.execution_options(**{WRITE: True})
                async with conn.begin():
                    yield conn

    async def run_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction, committed if it returns, rolled back if it raises."""
        if self._file is None:
            async with self.begin() as conn:
                return await conn.run_sync(fn)
        file = self._file

        def write() -> T:
            with file.connect() as conn:
                conn.execution_options(**{WRITE: True})
                with conn.begin():
                    return fn(conn)

        async with self._writers:
            return await self._on_thread(write)

    async def run_raw_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction on this engine's own ``sqlite3`` connection.

        For the busiest writes (the ingest group commit): no pool checkout and no statement machinery.
        Committed if ``fn`` returns, rolled back if it raises.

        The statements run on the event loop's thread when the write lock is free at once: a group
        commit is a fraction of a millisecond of work, and handing it to the writer thread costs more
        than it saves (the two threads contend for the GIL at every statement). The ``COMMIT`` waits
        for the disk (``synchronous=FULL``: an acknowledged event survives a power cut). On a disk that
        answers within :attr:`inline_commit_limit` it runs on the loop's thread too (a hop to the
        writer thread and back costs more CPU than such a wait); on a slower disk it runs on the writer
        thread and the loop goes on meanwhile. When another process holds the lock, the whole write
        waits for it there (for :attr:`write_timeout` seconds at most, then fails), so the loop never
        sits in SQLite's busy handler. Checkpoints of the write-ahead log run on another thread.
        """
        if self._file is None:
            raise RuntimeError("raw writes need a database file")
        async with self._writers:
            raw = self._raw_connection()
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
                wait_ms = round(self.write_timeout * 1000)
                return await self._on_thread(lambda: _write_when_unlocked(raw, fn, wait_ms))
            try:
                result = fn(raw)
            except BaseException:
                _roll_back(raw)
                raise
            try:
                if self._commit_seconds < self.inline_commit_limit:
                    self._commit_seconds = _smoothed(self._commit_seconds, _timed(_finish, raw))
                else:
                    elapsed = await self._on_thread(lambda: _timed(_finish, raw))
                    self._commit_seconds = _smoothed(self._commit_seconds, elapsed)
            finally:
                self._checkpoint_soon()
            return result

    def _raw_connection(self) -> sqlite3.Connection:
        """The connection for raw writes: it never waits for the lock and never checkpoints by itself."""
        if self._raw is None:
            assert self._file is not None
            raw = sqlite3.connect(str(self._file.url.database), isolation_level=None, check_same_thread=False)
            _configure_connection(raw)
            raw.execute("PRAGMA busy_timeout=0")
            raw.execute("PRAGMA wal_autocheckpoint=0")
            raw.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            self._raw = raw
        return self._raw

    def _checkpoint_soon(self) -> None:
        """After a raw commit: copy the write-ahead log into the database, every 50 commits or every second,
        on a thread of its own.

        Not on the writer thread: a checkpoint waits for the disk, and the next commit must not wait
        behind it (a passive checkpoint never blocks a writer). But a checkpoint that commits keep
        overtaking never completes, and SQLite starts the log over only after one that did: under
        sustained load the log would grow for as long as the load lasts (tens of MB a minute at full
        speed, each commit making the file longer, which costs the disk more than writing over it).
        So when a checkpoint finds that the log has grown beyond :attr:`wal_limit_pages` since it last
        started over, it checkpoints again at once holding the write lock: the passive pass has copied
        nearly all of the log, so the writes wait only for what they added meanwhile, the checkpoint
        completes, and the next write starts the log over.
        """
        self._commits_since_checkpoint += 1
        if self._checkpoint is not None and not self._checkpoint.done():
            return
        now = time.monotonic()
        if self._commits_since_checkpoint < CHECKPOINT_COMMITS and now - self._checkpointed_at < CHECKPOINT_INTERVAL:
            return
        self._checkpointed_at = now
        self._commits_since_checkpoint = 0
        file = self._file
        assert file is not None

        def checkpoint() -> bool:
            """Whether the log is behind: longer than the limit since it last started over."""
            with file.connect() as conn:
                _, pages, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            return bool(pages > self.wal_limit_pages)

        async def run() -> None:
            if await asyncio.to_thread(checkpoint):
                async with self._writers:
                    await asyncio.to_thread(checkpoint)

        self._checkpoint = asyncio.ensure_future(run())
        self._checkpoint.add_done_callback(_log_checkpoint_failure)

    async def run_read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a connection that reads (no write lock)."""
        if self._file is None:
            async with self.connect() as conn:
                return await conn.run_sync(fn)
        file = self._file

        def read() -> T:
            with file.connect() as conn:
                return fn(conn)

        return await self._on_thread(read)

    async def _on_thread(self, work: Callable[[], T]) -> T:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-sqlite")
        done = asyncio.get_running_loop().run_in_executor(self._thread, work)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # the thread finishes what it started; callers after us (and the write lock) wait for it
            with contextlib.suppress(BaseException):
                await done
            raise

    async def dispose(self, close: bool = True) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(BaseException):
                await self._checkpoint
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._file is not None:
            self._file.dispose(close)
        await super().dispose(close)


def _smoothed(average: float, sample: float) -> float:
    """A moving average of commit times in which the newest weighs a fifth."""
    return average + 0.2 * (sample - average)


def _timed(fn: Callable[[sqlite3.Connection], None], raw: sqlite3.Connection) -> float:
    """Run ``fn(raw)``; the seconds it took."""
    started = time.perf_counter()
    fn(raw)
    return time.perf_counter() - started


def _roll_back(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        raw.execute("ROLLBACK")


def _finish(raw: sqlite3.Connection) -> None:
    """Commit the transaction ``raw`` has begun; roll it back if the commit fails."""
    try:
        raw.execute("COMMIT")
    except BaseException:
        _roll_back(raw)
        raise


def _commit(raw: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in the transaction ``raw`` has begun: commit if it returns, roll back if it raises."""
    try:
        result = fn(raw)
    except BaseException:
        _roll_back(raw)
        raise
    _finish(raw)
    return result


def _write_when_unlocked(raw: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], wait_ms: int) -> T:
    """Wait (on the writer thread) up to ``wait_ms`` for another process to release the write lock, then write."""
    raw.execute(f"PRAGMA busy_timeout={wait_ms}")
    try:
        raw.execute("BEGIN IMMEDIATE")
    finally:
        raw.execute("PRAGMA busy_timeout=0")
    return _commit(raw, fn)


def _log_checkpoint_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.warning("checkpoint of the SQLite write-ahead log failed: %s", error)


async def run_write(engine: AsyncEngine, fn: Callable[[Connection], T]) -> T:
    """Run the synchronous ``fn`` in one write transaction: on SQLite in one hop to its writer thread."""
    if isinstance(engine, SqliteEngine):
        return await engine.run_write(fn)
    async with engine.begin() as conn:
        return await conn.run_sync(fn)


async def run_read(engine: AsyncEngine, fn: Callable[[Connection], T]) -> T:
    """Run the synchronous ``fn`` on a reading connection: on SQLite in one hop to its writer thread."""
    if isinstance(engine, SqliteEngine):
        return await engine.run_read(fn)
    async with engine.connect() as conn:
        return await conn.run_sync(fn)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers the write lock, which deadlocks concurrent writers:
    # autocommit at the driver, and writes take the lock at BEGIN (other processes queue on busy_timeout).
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        _configure_connection(dbapi_connection)

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_connection(dbapi_connection: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    # an acknowledged event must survive a power cut: each commit waits for the disk
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (it stays so), unless it already is.

    Two connections switching a new file at the same moment: the loser gets "database is locked" at once
    (SQLite does not wait when waiting could deadlock); by the time it looks again the winner is done.
    """
    for _ in range(5):
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchall()[0][0]).lower() == "wal":  # (all: a statement left open keeps a lock)
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.fetchall()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
    cursor.execute("PRAGMA journal_mode=WAL")
