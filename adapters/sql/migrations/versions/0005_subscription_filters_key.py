"""Subscriptions by their filters: a conversation has one subscription for each set of filters, even when two
replicas store the same one at the same moment.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from alembic import op

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


def subscription_filters_key(filters: Mapping[str, Any]) -> str:
    """A subscription's filters as the key this revision gives existing rows: a list as the sorted set of its
    JSON-encoded values, an empty filter dropped, the SHA-256 of the sorted compact JSON.

    The migration's own copy, frozen as it was when this revision was written: the application's key
    (``bot.records.subscription_filters_key``) must agree with it (``tests/adapters/sql/test_migrations.py``);
    a change to the application's normal form needs a new revision that rekeys the rows.
    """
    normal = {
        key: sorted({json.dumps(v, sort_keys=True) for v in value}) if isinstance(value, list) else value
        for key, value in filters.items()
        if value not in ([], {}, None)
    }
    return hashlib.sha256(json.dumps(normal, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
