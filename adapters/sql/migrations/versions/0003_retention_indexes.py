"""Indexes for forgetting old cards and decided gates: card states by their last update, gates by decision.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_card_states_updated_at"), "card_states", ["updated_at"], unique=False)
    op.create_index(op.f("ix_gates_decided_at"), "gates", ["decided_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_gates_decided_at"), table_name="gates")
    op.drop_index(op.f("ix_card_states_updated_at"), table_name="card_states")
