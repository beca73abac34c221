"""dreams, their insights, and the memory bridge

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

A dream is deterministic analysis of a Nova's stored history (no API request): its
insights cite their evidence. Memories are what a session starts with: notes the agent
or a person added, an episode per finished item, insights a dream consolidated; shared
ones (no Nova) reach every Nova of the home.

Two indexes let a dream read a span of history without scanning it: work items by when
they finished, and history by time per Nova. A third finds the item a Nova holds (what a
session starts with) without scanning the queue.
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dreams",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nova_id", sa.Integer(), sa.ForeignKey("novas.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("span_from", sa.Float(), nullable=False),
        sa.Column("span_to", sa.Float(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("read_counts", sa.Text(), nullable=True),
        sa.Column("event_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_dreams_nova_started", "dreams", ["nova_id", "started_at"])
    op.create_table(
        "insights",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dream_id", sa.Integer(), sa.ForeignKey("dreams.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("work_item_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_insights_dream", "insights", ["dream_id", "rank"])
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nova_id", sa.Integer(), sa.ForeignKey("novas.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("strength", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("forgotten_at", sa.Float(), nullable=True),
        sa.Column("forgotten_why", sa.Text(), nullable=True),
        sa.Column("event_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_memories_nova_live", "memories", ["nova_id", "updated_at"],
                    sqlite_where=sa.text("forgotten_at IS NULL"))
    op.create_index("ix_memories_key", "memories", ["nova_id", "key"])
    op.create_index("ix_memories_event_id", "memories", ["event_id"], unique=True)
    op.create_index("ix_work_items_finished", "work_items", ["finished_at"],
                    sqlite_where=sa.text("finished_at IS NOT NULL"))
    op.create_index("ix_history_nova_at", "history", ["nova_id", "at"])
    op.create_index("ix_work_items_claimed", "work_items", ["claimed_by", "updated_at"],
                    sqlite_where=sa.text("status = 'claimed'"))


def downgrade() -> None:
    op.drop_index("ix_work_items_claimed", "work_items")
    op.drop_index("ix_history_nova_at", "history")
    op.drop_index("ix_work_items_finished", "work_items")
    op.drop_table("memories")
    op.drop_table("insights")
    op.drop_table("dreams")
