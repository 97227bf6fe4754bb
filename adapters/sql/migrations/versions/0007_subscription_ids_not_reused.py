"""A removed subscription's id is never given to another: on SQLite the subscriptions table is rebuilt with
AUTOINCREMENT (without it SQLite hands the highest id again once its row is deleted, so the audit log names
two subscriptions by one id, and a stale ``unsubscribe 2`` removes a new one). PostgreSQL's identity never
reuses an id: nothing changes there.

The rows keep their ids; the next id is one past the highest kept (an id removed before now, above them all,
may be given once more).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # batch mode copies the rows, ids included, into a new table made with the table options given, and
    # puts back its indexes
    with op.batch_alter_table("subscriptions", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
