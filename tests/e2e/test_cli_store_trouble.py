"""The `handoff` commands on a store in trouble: one line saying what is wrong and what to do, never a traceback."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from adapters.sql.migrate import head_revision
from tests.databases import POSTGRES_URL, _postgres_execute, postgres_or_skip
from tests.e2e.test_cli import clean_env, config_copy, run

NEWER = "the store was migrated by a newer Handoff (revision 0099); run that version or restore a backup"


def config_here(tmp_path: Path, **changes: object) -> Path:
    """The example configuration with its public URL on this machine (a closed port): ``doctor`` checks that URL,
    and a test reaches nothing beyond loopback."""
    return config_copy(tmp_path, server__public_url="http://127.0.0.1:9", **changes)


def outputs(*results: object) -> str:
    return "".join(getattr(r, "stdout", "") + getattr(r, "stderr", "") for r in results)


def test_a_store_migrated_by_a_newer_handoff_is_named_by_every_command(tmp_path: Path) -> None:
    path = config_here(tmp_path)
    assert run("db", "upgrade", "--config", str(path), env=clean_env()).returncode == 0
    with sqlite3.connect(tmp_path / "handoff.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    upgraded = run("db", "upgrade", "--config", str(path), env=clean_env())
    served = run("serve", "--config", str(path), "--port", "0", env=clean_env())
    doctor = run("doctor", "--config", str(path), env=clean_env())
    audit = run("audit", "--config", str(path), env=clean_env())
    # connect cannot read the chat subscriptions, whose projects need hooks too: it plans nothing
    connect = run("connect", "azure-devops", "--config", str(path), "--dry-run", env=clean_env())
    assert (upgraded.returncode, served.returncode, doctor.returncode, audit.returncode) == (3, 3, 4, 3)
    assert connect.returncode == 3 and connect.stderr.startswith(f"handoff connect azure-devops: {NEWER}")
    assert upgraded.stderr.strip() == f"handoff db upgrade: {NEWER}"
    assert served.stderr.strip().endswith(f"handoff serve: cannot start: {NEWER}")
    assert NEWER in doctor.stdout and "db upgrade" not in doctor.stdout
    assert audit.stderr.strip() == f"handoff audit: {NEWER}"
    assert "Traceback" not in outputs(upgraded, served, doctor, audit, connect)


@pytest.mark.parametrize(
    ("url", "secret", "problem"),
    [
        (
            "postgresql://u:p@ss:w0rd@127.0.0.1:5432/test",
            "w0rd",
            "postgresql://u:***@127.0.0.1:5432/test: the password must be percent-encoded",
        ),
        (
            "postgresql://u:hunter2@127.0.0.1:abc/test",
            "hunter2",
            "postgresql://u:***@127.0.0.1:abc/test: the port must be a number",
        ),
    ],
)
def test_a_store_url_that_cannot_be_read_is_named_and_its_password_never_shown(
    tmp_path: Path, url: str, secret: str, problem: str
) -> None:
    path = config_here(tmp_path, store__url=url)
    results = [
        run("serve", "--config", str(path), "--port", "0", env=clean_env()),
        run("db", "upgrade", "--config", str(path), env=clean_env()),
        run("doctor", "--config", str(path), env=clean_env()),
        run("audit", "--config", str(path), env=clean_env()),
    ]
    for result in results:
        assert result.returncode == 1, result.stderr  # a configuration problem, found before the store is opened
        assert f"store.url: {problem}" in result.stderr
    assert secret not in outputs(*results) and "Traceback" not in outputs(*results)


def test_doctor_and_audit_create_nothing_where_there_is_no_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "deeper" / "handoff.db"
    path = config_here(tmp_path, store__url=f"sqlite:///{missing}")
    doctor = run("doctor", "--config", str(path), env=clean_env())
    audit = run("audit", "--config", str(path), env=clean_env())
    assert doctor.returncode == 4 and audit.returncode == 3
    said = f"no database at {missing}; `handoff db upgrade` creates it"
    assert said in doctor.stdout and audit.stderr.strip() == f"handoff audit: {said}"
    assert not (tmp_path / "typo").exists()
    assert run("db", "upgrade", "--config", str(path), env=clean_env()).returncode == 0
    assert missing.is_file()


def test_doctor_and_audit_name_what_postgres_answered(tmp_path: Path) -> None:
    postgres_or_skip()
    url = make_url(POSTGRES_URL).set(username="nosuchuser").render_as_string(hide_password=False)
    path = config_here(tmp_path, store__url=url)
    doctor = run("doctor", "--config", str(path), env=clean_env())
    audit = run("audit", "--config", str(path), env=clean_env())
    assert doctor.returncode == 4 and audit.returncode == 3
    store_line = next(line for line in doctor.stdout.splitlines() if line.startswith("FAIL  store"))
    assert 'role "nosuchuser" does not exist' in store_line
    assert 'role "nosuchuser" does not exist' in audit.stderr
    assert "Traceback" not in outputs(doctor, audit)


def test_db_upgrade_creates_the_schema_the_url_names(tmp_path: Path) -> None:
    postgres_or_skip()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    path = config_here(tmp_path, store__url=f"{POSTGRES_URL}?schema={schema}")
    try:
        upgraded = run("db", "upgrade", "--config", str(path), env=clean_env())
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"store is at revision {head_revision()}" in upgraded.stdout
        doctor = run("doctor", "--config", str(path), env=clean_env())
        assert any(line.startswith("ok    store") for line in doctor.stdout.splitlines()), doctor.stdout
    finally:
        asyncio.run(_postgres_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def test_db_upgrade_says_how_to_create_a_schema_it_may_not_create(tmp_path: Path) -> None:
    postgres_or_skip()
    role, schema = f"r_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_execute(f'CREATE ROLE "{role}" LOGIN'))  # (no right to create schemas)
    url = make_url(POSTGRES_URL).set(username=role).render_as_string(hide_password=False)
    path = config_here(tmp_path, store__url=f"{url}?schema={schema}")
    try:
        upgraded = run("db", "upgrade", "--config", str(path), env=clean_env())
    finally:
        asyncio.run(_postgres_execute(f'DROP ROLE "{role}"'))
    assert upgraded.returncode == 3
    assert upgraded.stderr.strip() == f"handoff db upgrade: schema {schema} does not exist: CREATE SCHEMA {schema}"
    assert "cannot reach" not in upgraded.stderr


def test_db_upgrade_says_the_store_refused_when_the_server_answered(tmp_path: Path) -> None:
    postgres_or_skip()
    answering = make_url(POSTGRES_URL).set(password="s3cret-pw", database="nosuchdb")
    closed = answering.set(port=9)  # nothing listens there
    refused, unreached = (
        run("db", "upgrade", "--config", str(config_here(tmp_path, store__url=url)), env=clean_env())
        for url in (answering.render_as_string(hide_password=False), closed.render_as_string(hide_password=False))
    )
    assert (refused.returncode, unreached.returncode) == (3, 3)
    assert refused.stderr.startswith("handoff db upgrade: the store refused: postgresql://")
    assert refused.stderr.strip().endswith(': database "nosuchdb" does not exist')
    assert unreached.stderr.startswith("handoff db upgrade: cannot reach the store: postgresql://")
    assert "s3cret-pw" not in outputs(refused, unreached) and "Traceback" not in outputs(refused, unreached)
