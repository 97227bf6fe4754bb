"""Migrations: replicas that start together migrate one at a time."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from adapters.sql import SqlStore
from adapters.sql.tables import metadata


async def test_concurrent_migrations_do_not_collide(store_url: str) -> None:
    stores = [await SqlStore.open(store_url, migrate=False) for _ in range(4)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert all([await s.is_ready() for s in stores])
    finally:
        for s in stores:
            await s.close()


async def test_the_migrations_build_the_schema_the_code_queries(store_url: str) -> None:
    """Every table, column and index of ``adapters/sql/tables.py`` comes from a migration, and nothing else."""
    store = await SqlStore.open(store_url)
    try:
        async with store.engine.connect() as conn:
            differences = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
        assert differences == []
    finally:
        await store.close()
