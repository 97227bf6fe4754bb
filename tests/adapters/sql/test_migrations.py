"""Migrations: replicas that start together migrate one at a time."""

from __future__ import annotations

import ast
import asyncio
import importlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert

from adapters.sql import SqlStore
from adapters.sql.migrate import upgrade_database
from adapters.sql.tables import metadata
from bot.records import ConversationAddress, StoredSubscription, subscription_filters_key

MIGRATION_VERSIONS = Path(__file__).resolve().parents[3] / "adapters" / "sql" / "migrations" / "versions"

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
# the subscriptions table as revision 0004 left it
subscriptions_0004 = sa.table(
    "subscriptions",
    sa.column("platform", sa.String()),
    sa.column("conversation_id", sa.String()),
    sa.column("filters", sa.JSON()),
    sa.column("created_by", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)

# and as revisions 0005 and 0006 left it
subscriptions_0006 = sa.table(
    "subscriptions",
    *(sa.column(c.name, c.type) for c in subscriptions_0004.columns),
    sa.column("filters_key", sa.String()),
)


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


async def test_subscriptions_stored_twice_before_they_had_a_key_are_kept_and_the_first_is_the_one(
    store_url: str,
) -> None:
    """A conversation's subscriptions with the same filters, stored before revision 0005 told them apart: the
    oldest is the one a new `subscribe` finds; the duplicate stays as it was made."""
    store = await SqlStore.open(store_url, migrate=False)
    try:
        await upgrade_database(store.engine, "0004")
        rows = [
            {"events": ["run", "approval"]},
            {"events": ["approval", "run"], "branches": []},  # the same, written another way
            {"events": ["run"]},
        ]
        async with store.engine.begin() as conn:
            for filters in rows:
                await conn.execute(
                    insert(subscriptions_0004).values(
                        platform="slack", conversation_id="C1", filters=filters, created_by="bob", created_at=NOW
                    )
                )
        await store.migrate()
        first, duplicate, other = await store.list_subscriptions()
        made = StoredSubscription(ConversationAddress("slack", "C1"), {"events": ["approval", "run"]}, "carol", NOW)
        assert await store.add_subscription(made) == (first.id, False)
        assert [s.id for s in await store.list_subscriptions()] == [first.id, duplicate.id, other.id]
    finally:
        await store.close()


async def test_subscriptions_keep_their_ids_and_a_removed_one_is_not_given_again(store_url: str) -> None:
    """Revision 0007 rebuilds SQLite's subscriptions table so that ids are not reused: the rows made before keep
    their ids, their filters and what tells a duplicate."""
    store = await SqlStore.open(store_url, migrate=False)
    try:
        await upgrade_database(store.engine, "0006")
        async with store.engine.begin() as conn:
            for filters in ({"events": ["run"]}, {"events": ["approval"]}, {"events": ["stage"]}):
                await conn.execute(
                    insert(subscriptions_0006).values(
                        platform="slack",
                        conversation_id="C1",
                        filters=filters,
                        created_by="bob",
                        created_at=NOW,
                        filters_key=subscription_filters_key(filters),
                    )
                )
        before = await store.list_subscriptions()
        await store.migrate()
        after = await store.list_subscriptions()
        assert [(s.id, s.filters) for s in after] == [(s.id, s.filters) for s in before]
        made = StoredSubscription(ConversationAddress("slack", "C1"), {"events": ["approval"]}, "carol", NOW)
        assert await store.add_subscription(made) == (after[1].id, False)  # still one per conversation and filters
        assert await store.remove_subscription(after[2].id)
        new_id, added = await store.add_subscription(replace(made, filters={"events": ["release"]}))
        assert added and new_id not in {s.id for s in after}
    finally:
        await store.close()


def test_no_migration_imports_the_application() -> None:
    """A revision does what it did when it was written, whatever the application's code becomes: it imports
    neither the core nor the adapters."""
    importing_the_application: list[str] = []
    for revision_file in sorted(MIGRATION_VERSIONS.glob("*.py")):
        for node in ast.walk(ast.parse(revision_file.read_text(), filename=str(revision_file))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            importing_the_application += [
                f"{revision_file.name}: {module}" for module in modules if module.split(".")[0] in ("bot", "adapters")
            ]
    assert importing_the_application == []


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"events": ["run", "approval"]},
        {"events": ["approval", "run", "run"], "branches": [], "pipelines": None, "extra": {}},
        {"pipelines": ["train-*"], "branches": ["main", "release/*"], "outcomes": ["failed"]},
        {"actors_exclude": ["me"], "repeat_limit": "1h", "broadcast": False, "card_format": "compact"},
        {"models": [{"name": "churn", "stage": "prod"}, "fraud"], "folders": ["données/é"]},
    ],
)
def test_revision_0005_keys_filters_as_the_application_does(filters: dict[str, Any]) -> None:
    """Revision 0005 keyed the existing subscriptions with its own copy of the key; while the application's key
    agrees with it, a new subscription meets the rows it keyed. When this fails, the application's normal form
    changed: a new revision must rekey the stored subscriptions."""
    revision_0005 = importlib.import_module("adapters.sql.migrations.versions.0005_subscription_filters_key")
    assert revision_0005.subscription_filters_key(filters) == subscription_filters_key(filters)
