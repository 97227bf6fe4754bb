"""Schema migrations with Alembic, run in-process on the store's own engine."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x48414E44  # "HAND": the advisory lock every Handoff replica takes to migrate


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration Handoff ships (read from its files once: they do not change while it runs)."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
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
        command.upgrade(_alembic_config(connection), revision)

    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # replicas starting together take turns: the first migrates, the others find it done
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await connection.run_sync(upgrade)
    reached = await current_revision(engine)
    return reached or ""
