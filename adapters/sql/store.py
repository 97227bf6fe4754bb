"""The SQL implementation of the ``Store`` port."""

from __future__ import annotations

import re
import sqlite3

import asyncpg
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.audit import SqlAuditLog
from adapters.sql.cards import SqlCardStore
from adapters.sql.command_runs import SqlCommandRunStore
from adapters.sql.conversations import SqlConversationStore
from adapters.sql.engine import SqliteEngine, create_engine_for, run_read, shown_url
from adapters.sql.events import SqlEventLog
from adapters.sql.gates import SqlGateStore
from adapters.sql.migrate import head_revision, is_known, schema_revision, upgrade_database
from adapters.sql.outages import store_unavailable
from adapters.sql.outbox import SqlOutbox
from adapters.sql.problems import StoreNotMigrated, StoreTooNew, read_url
from adapters.sql.readiness import Readiness
from adapters.sql.subscriptions import SqlSubscriptionStore

# What a database that refuses, or does not answer, raises: the server's own errors (no such database, a
# wrong password), the driver's (an sslmode it does not know) and the network's.
STORE_ERRORS = (SQLAlchemyError, OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


class StoreUnavailable(ConnectionError):
    """The store could not be opened or migrated. The message names the database (never its password) and
    what it answered; ``refused`` says whether the server answered (no such database, no such role, a wrong
    password) rather than not being reached at all."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def _unavailable(shown: str, error: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"{shown}: {_reason(error)}", refused=_server_answered(error))


def _server_answered(error: BaseException) -> bool:
    """Whether PostgreSQL itself sent the error (it carries a SQLSTATE): the server was reached."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, asyncpg.PostgresError):
            return True
        cause = cause.orig if isinstance(cause, DBAPIError) and cause.orig is not None else cause.__cause__
    return False


def _reason(error: BaseException) -> str:
    """The database's own words: the first line of the driver's message, without SQLAlchemy's wrapping."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = str(cause).strip().splitlines()
    # SQLAlchemy's asyncpg adapter prefixes the driver's message with "<class '…'>: "
    return re.sub(r"^<class '[\w.]+'>: ", "", lines[0]) if lines else type(cause).__name__


class SqlStore(
    SqlEventLog,
    SqlOutbox,
    SqlCardStore,
    SqlGateStore,
    SqlAuditLog,
    SqlSubscriptionStore,
    SqlConversationStore,
    SqlCommandRunStore,
):
    """Everything Handoff keeps, in SQLite or PostgreSQL.

    Use :meth:`open` to build one from a store URL (``sqlite:///path.db`` or ``postgresql://…``).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.readiness = Readiness(self._answers_at_head)

    @classmethod
    async def open(cls, url: str, migrate: bool = True, create: bool = True) -> SqlStore:
        """Connect to the database at ``url`` and, unless told not to, migrate it to the latest schema.

        ``create=False`` (for commands that only read) creates no SQLite file: :class:`NoDatabase` when
        there is none. Raises :class:`StoreUrlUnreadable` for a URL that cannot be parsed,
        :class:`StoreUnavailable` when the database refuses or does not answer, and a
        :class:`StoreNotUsable` when it answers but cannot be migrated (a newer schema, a schema missing).
        """
        read_url(url)
        try:
            store = cls(create_engine_for(url, create))
        # a SQLite file that cannot be opened, a folder that cannot be made, a URL parameter out of shape
        except (*STORE_ERRORS, ValueError) as error:
            raise _unavailable(shown_url(url), error) from error
        if migrate:
            try:
                await store.migrate()
            except BaseException:
                await store.close()
                raise
        return store

    async def migrate(self) -> str:
        """Migrate the database to the latest schema; the revision reached. :class:`StoreUnavailable` when
        the database refuses or does not answer."""
        try:
            return await upgrade_database(self.engine)
        except STORE_ERRORS as error:
            raise _unavailable(shown_url(self.engine.url), error) from error
        finally:
            self.readiness.forget()

    async def read_revision(self) -> str | None:
        """The revision the store is at, None when it was never migrated (no Handoff data in it);
        :class:`StoreUnavailable` (with the database's own words) when it does not answer."""
        try:
            return await run_read(self.engine, schema_revision)
        except STORE_ERRORS as error:
            raise _unavailable(shown_url(self.engine.url), error) from error

    async def check_revision(self) -> str:
        """The revision the store is at, when it is the one this Handoff needs; otherwise raises what is wrong:
        :class:`StoreUnavailable` (with the database's own words), :class:`StoreNotMigrated` or
        :class:`StoreTooNew`."""
        revision = await self.read_revision()
        head = head_revision()
        if revision == head:
            return revision
        if revision is None:
            raise StoreNotMigrated(f"{shown_url(self.engine.url)} is not migrated; `handoff db upgrade` migrates it")
        if not is_known(revision):
            raise StoreTooNew(revision)
        raise StoreNotMigrated(
            f"{shown_url(self.engine.url)} is at revision {revision}, this Handoff needs {head}; "
            "`handoff db upgrade` migrates it"
        )

    async def is_ready(self) -> bool:
        """Whether the store answers and is migrated; cheap enough to ask on every health probe."""
        return await self.readiness()

    async def _answers_at_head(self) -> bool:
        if isinstance(self.engine, SqliteEngine) and not self.engine.file_in_place():
            return False  # deleted or replaced: what is written now would be lost at the next start
        try:
            # read off the event loop on SQLite: a probe never holds up the hooks
            return await run_read(self.engine, schema_revision) == head_revision()
        except STORE_ERRORS:
            return False

    def unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` is this store out of reach for a while (see :func:`store_unavailable`)."""
        return store_unavailable(error)

    async def close(self) -> None:
        await self.engine.dispose()
