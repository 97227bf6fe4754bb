"""Migrations: replicas that start together migrate one at a time."""

from __future__ import annotations

import asyncio

from adapters.sql import SqlStore


async def test_concurrent_migrations_do_not_collide(store_url: str) -> None:
    stores = [await SqlStore.open(store_url, migrate=False) for _ in range(4)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert all([await s.is_ready() for s in stores])
    finally:
        for s in stores:
            await s.close()
