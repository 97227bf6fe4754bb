"""Subscriptions by their filters: a conversation has one subscription for each set of filters, even when two
replicas store the same one at the same moment.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.records import subscription_filters_key

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_subscriptions = sa.table(
    "subscriptions",
    sa.column("id", sa.BigInteger()),
    sa.column("platform", sa.String()),
    sa.column("conversation_id", sa.String()),
    sa.column("filters", sa.JSON()),
    sa.column("filters_key", sa.String()),
)


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("filters_key", sa.String(length=64), nullable=True))
    # the oldest of each conversation's subscriptions with the same filters gets the key; a duplicate stored
    # before now keeps none (it stays, as its conversation made it, until someone unsubscribes it)
    connection = op.get_bind()
    keyed: set[tuple[str, str, str]] = set()
    rows = connection.execute(
        sa.select(
            _subscriptions.c.id, _subscriptions.c.platform, _subscriptions.c.conversation_id, _subscriptions.c.filters
        ).order_by(_subscriptions.c.id)
    ).all()
    for row in rows:
        same = (row.platform, row.conversation_id, subscription_filters_key(row.filters or {}))
        if same in keyed:
            continue
        keyed.add(same)
        connection.execute(sa.update(_subscriptions).where(_subscriptions.c.id == row.id).values(filters_key=same[2]))
    op.create_index(
        "ix_subscriptions_conversation_filters",
        "subscriptions",
        ["platform", "conversation_id", "filters_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_conversation_filters", table_name="subscriptions")
    op.drop_column("subscriptions", "filters_key")
