"""what the other hosts of the cluster do on an account: their requests in flight,
running sessions and latest start, and when the server last answered (issue 23)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08

- `account_peers`: one row per account shared through the cluster, written by the
  supervisor's sync (torchsm.cluster.accounts) and read by the usage verdict (the hooks
  too: they read the local SQLite only) and by admission. `answered_at` is when the server
  last answered for the account (this host's clock): past `[cluster] lease_s` the host is
  cut off and starts no new session of the account (fail closed).
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_peers",
        sa.Column("account", sa.String(length=32), primary_key=True),
        sa.Column("in_flight", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("running", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_start", sa.Float(), nullable=True),
        sa.Column("answered_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_peers")
