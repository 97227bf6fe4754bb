"""Cards remember the version first posted in each conversation, so that a reply made quiet for a first post
that turned out to show an older version is sent as planned.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the cards posted before now keep NULL: which version they were first posted with is not known
    op.add_column("cards", sa.Column("first_rank", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("cards", "first_rank")
