"""Schema migrations with Alembic, run in-process on the store's own engine."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sql.problems import SchemaMissing, StoreTooNew

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x48414E44  # "HAND": the advisory lock every Handoff replica takes to migrate


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of the migrations this Handoff ships (not one of a newer Handoff's)."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


@functools.cache
def head_revision() -> str:
    """The newest migration Handoff ships (read from its files once: they do not change while it runs)."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def schema_revision(connection: Connection) -> str | None:
    """The migration the database behind ``connection`` is at, or None before the first one."""
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at, or None before the first one."""
    async with engine.connect() as connection:
        return await connection.run_sync(schema_revision)


async def upgrade_database(engine: AsyncEngine, revision: str = "head") -> str:
    """Apply every migration up to ``revision``; returns the revision reached."""

    def upgrade(connection: Connection) -> None:
        current = schema_revision(connection)
        if current is not None and not is_known(current):
            raise StoreTooNew(current)
        command.upgrade(_alembic_config(connection), revision)

    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # replicas starting together take turns: the first migrates, the others find it done
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            if schema := getattr(engine, "schema", None):
                await _create_schema(connection, schema)
        await connection.run_sync(upgrade)
    reached = await current_revision(engine)
    return reached or ""


async def _create_schema(connection: AsyncConnection, schema: str) -> None:
    """Create the URL's ``?schema=`` if it does not exist; :class:`SchemaMissing` when that is not permitted."""
    exists = text("SELECT 1 FROM pg_namespace WHERE nspname = :name")
    if (await connection.execute(exists, {"name": schema})).first() is not None:
        return  # (creating it, even IF NOT EXISTS, needs a right that using it does not)
    quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
    try:
        await connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == "42501":  # insufficient_privilege
            raise SchemaMissing(schema) from None
        raise
