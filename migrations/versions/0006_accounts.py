"""accounts: usage windows and request grants per account, limit holds apart in history

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Usage windows belonged to a Nova; the provider's limits belong to the account the Novas
share. Existing homes move every Nova to the account `default` and keep, per window,
the latest word any of their Novas had.
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("novas") as batch:
        batch.add_column(sa.Column("account", sa.String(32), nullable=False,
                                   server_default="default"))
        batch.create_index("ix_novas_account", ["account"])
    with op.batch_alter_table("history") as batch:
        batch.add_column(sa.Column("limit_hold", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "account_windows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("utilization", sa.Float(), nullable=True),
        sa.Column("resets_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False, server_default="event"),
        sa.Column("nova", sa.String(32), nullable=True),
        sa.Column("per_request", sa.Float(), nullable=True),
        sa.Column("deltas", sa.Text(), nullable=True),
    )
    op.create_index("ix_account_windows_account_window", "account_windows",
                    ["account", "window"], unique=True)
    op.execute(
        "INSERT INTO account_windows (account, window, status, utilization, resets_at,"
        " updated_at, source, nova)"
        " SELECT 'default', w.window, w.status, w.utilization, w.resets_at, w.updated_at,"
        " 'event', n.name FROM usage_windows w JOIN novas n ON n.id = w.nova_id"
        " WHERE w.id = (SELECT w2.id FROM usage_windows w2 WHERE w2.window = w.window"
        " ORDER BY w2.updated_at DESC, w2.id DESC LIMIT 1)")
    op.drop_index("ix_usage_windows_nova_window", table_name="usage_windows")
    op.drop_table("usage_windows")
    op.create_table(
        "usage_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("nova_id", sa.Integer(), sa.ForeignKey("novas.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("granted_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_usage_grants_account", "usage_grants", ["account", "granted_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_grants_account", table_name="usage_grants")
    op.drop_table("usage_grants")
    op.create_table(
        "usage_windows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nova_id", sa.Integer(), sa.ForeignKey("novas.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("utilization", sa.Float(), nullable=True),
        sa.Column("resets_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_usage_windows_nova_window", "usage_windows", ["nova_id", "window"],
                    unique=True)
    op.execute(
        "INSERT INTO usage_windows (nova_id, window, status, utilization, resets_at,"
        " updated_at) SELECT n.id, w.window, w.status, w.utilization, w.resets_at,"
        " w.updated_at FROM account_windows w JOIN novas n ON n.account = w.account")
    op.drop_index("ix_account_windows_account_window", table_name="account_windows")
    op.drop_table("account_windows")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("limit_hold")
    with op.batch_alter_table("novas") as batch:
        batch.drop_index("ix_novas_account")
        batch.drop_column("account")
