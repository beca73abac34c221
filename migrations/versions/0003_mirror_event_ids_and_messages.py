"""mirror event ids on history rows; messages between Novas

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before the mirror existed have no event id; new ones always do.
    with op.batch_alter_table("history") as batch:
        batch.add_column(sa.Column("event_id", sa.String(32), nullable=True))
    op.create_index("ix_history_event_id", "history", ["event_id"], unique=True)
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_messages_event_id", "messages", ["event_id"], unique=True)
    op.create_index("ix_messages_recipient", "messages", ["recipient", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_recipient", table_name="messages")
    op.drop_index("ix_messages_event_id", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_history_event_id", table_name="history")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("event_id")
