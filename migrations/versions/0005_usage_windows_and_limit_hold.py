"""usage windows per Nova, the usage-limit hold, Stop-hook message digests

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("novas") as batch:
        batch.add_column(sa.Column("limit_hold", sa.Text(), nullable=True))
    with op.batch_alter_table("hook_runs") as batch:
        batch.add_column(sa.Column("message_digest", sa.String(16), nullable=True))
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


def downgrade() -> None:
    op.drop_index("ix_usage_windows_nova_window", table_name="usage_windows")
    op.drop_table("usage_windows")
    with op.batch_alter_table("hook_runs") as batch:
        batch.drop_column("message_digest")
    with op.batch_alter_table("novas") as batch:
        batch.drop_column("limit_hold")
