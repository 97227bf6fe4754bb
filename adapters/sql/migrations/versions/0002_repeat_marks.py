"""Repeat marks: the card each conversation was last shown for a repeat key, and when.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repeat_marks",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("conversation_id", sa.String(length=400), nullable=False),
        sa.Column("repeat_key", sa.String(length=400), nullable=False),
        sa.Column("grouping_key", sa.String(length=400), nullable=False),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "conversation_id", "repeat_key"),
    )
    op.create_index(op.f("ix_repeat_marks_shown_at"), "repeat_marks", ["shown_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_repeat_marks_shown_at"), table_name="repeat_marks")
    op.drop_table("repeat_marks")
