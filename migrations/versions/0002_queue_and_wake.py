"""work queue items and wake signals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("nova", sa.String(32), nullable=True),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("owner", sa.String(32), nullable=True),
        sa.Column("claimed_by", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("source_key", sa.String(64), nullable=True, unique=True),
    )
    op.create_index("ix_work_items_open", "work_items", ["priority_rank", "created_at", "id"],
                    sqlite_where=sa.text("status IN ('pending', 'claimed')"))
    op.create_table(
        "wake_signals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nova_id", sa.Integer(),
                  sa.ForeignKey("novas.id", ondelete="CASCADE"), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(64), nullable=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("rules", sa.Text(), nullable=False),
    )
    op.create_index("ix_wake_signals_due", "wake_signals", ["status", "due_at"])
    op.create_index("ix_wake_signals_nova_received", "wake_signals",
                    ["nova_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_wake_signals_nova_received", table_name="wake_signals")
    op.drop_index("ix_wake_signals_due", table_name="wake_signals")
    op.drop_table("wake_signals")
    op.drop_index("ix_work_items_open", table_name="work_items")
    op.drop_table("work_items")
