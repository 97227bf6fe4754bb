"""Conversation sends: when each conversation was sent a message, so that every replica keeps to the
platforms' per-conversation limits.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_sends",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("conversation_id", sa.String(length=400), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_conversation_sends_conversation",
        "conversation_sends",
        ["platform", "conversation_id", "sent_at"],
        unique=False,
    )
    op.create_index(op.f("ix_conversation_sends_sent_at"), "conversation_sends", ["sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_conversation_sends_sent_at"), table_name="conversation_sends")
    op.drop_index("ix_conversation_sends_conversation", table_name="conversation_sends")
    op.drop_table("conversation_sends")
