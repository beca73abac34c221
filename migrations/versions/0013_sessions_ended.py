"""the daily cost budget reads the sessions that ended in its window by index (issue 21)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

The budget counts a session by when it ended (`ledger.costs_since`): a session whose
supervisor was killed is closed by the recovery, which can be days after it started, so
no bound on `started_at` finds it. Without an index on `ended_at` that query read the
account's whole ledger, for every admission and every dream. `ix_sessions_nova_ended`
covers it: per Nova, the range of ends, with the cost.
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_nova_ended", "sessions", ["nova_id", "ended_at", "cost_usd"])


def downgrade() -> None:
    op.drop_index("ix_sessions_nova_ended", "sessions")
