"""Store URLs as operators write them: libpq's parameters on PostgreSQL, and a clear answer for a database
that refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.sql import SqlStore
from adapters.sql.engine import shown_url
from adapters.sql.store import StoreUnavailable
from tests.databases import POSTGRES_URL, postgres_or_skip


async def _show(store: SqlStore, setting: str) -> str:
    async with store.engine.connect() as conn:
        return str((await conn.execute(text(f"SHOW {setting}"))).scalar_one())


async def test_postgres_takes_the_parameters_psql_takes(postgres_url: str) -> None:
    base, _, schema = postgres_url.partition("?schema=")
    url = (
        f"{base}?sslmode=disable&application_name=handoff-replica-2&connect_timeout=5"
        f"&options=-c%20statement_timeout%3D4321&schema={schema}"
    )
    store = await SqlStore.open(url)
    try:
        assert await store.is_ready()
        assert await _show(store, "application_name") == "handoff-replica-2"
        assert await _show(store, "statement_timeout") == "4321ms"
        assert await _show(store, "search_path") == schema  # ?schema= still keeps the tables apart
        async with store.engine.connect() as conn:
            tables = await conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            )
            assert tables.scalar_one() >= 10
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ("sslmode=sometimes", "`sslmode` parameter must be one of"),
        ("no_such_setting=1", 'unrecognized configuration parameter "no_such_setting"'),
        ("connect_timeout=soon", "connect_timeout must be a number of seconds, not 'soon'"),
    ],
)
async def test_postgres_parameters_it_refuses_are_named(query: str, answer: str) -> None:
    postgres_or_skip()
    with pytest.raises(StoreUnavailable) as refused:
        await SqlStore.open(f"{POSTGRES_URL}?{query}")
    assert answer in str(refused.value)


async def test_a_database_that_refuses_is_named_without_its_password() -> None:
    postgres_or_skip()
    url = make_url(POSTGRES_URL).set(username="no_such_role", password="hunter2-secret")
    with pytest.raises(StoreUnavailable) as refused:
        await SqlStore.open(url.render_as_string(hide_password=False))
    message = str(refused.value)
    assert 'role "no_such_role" does not exist' in message or "password authentication failed" in message
    assert "hunter2-secret" not in message
    assert "no_such_role:***@" in message


async def test_a_sqlite_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(StoreUnavailable) as refused:
        await SqlStore.open(f"sqlite:///{folder}")
    assert str(refused.value) == f"sqlite:///{folder}: unable to open database file"


def test_a_shown_url_hides_the_password_and_the_driver() -> None:
    assert shown_url("postgresql+asyncpg://handoff:s3cret@db.internal/handoff?sslmode=require") == (
        "postgresql://handoff:***@db.internal/handoff?sslmode=require"
    )
    assert shown_url("sqlite:///.handoff/handoff.db") == "sqlite:///.handoff/handoff.db"
