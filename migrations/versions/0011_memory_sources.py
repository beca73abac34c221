"""who wrote each memory, strength from distinct writers; live sessions by index (issue 20)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Any agent could take over every Nova's memory: adding the same text again raised its
strength without limit. A memory now records its `writer` (the Nova whose session wrote
it, `dream:ID`, or `user:NAME` at the command line) and `memory_writers` holds each
distinct writer once: the strength a writer adds counts once. Rows from before are given
the writer their `source` names (`agent` and `item:ID`: the Nova; `dream:ID`), else none.

`ix_sessions_running` finds a Nova's sessions still `running` (is a session live?) without
reading its whole ledger.
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BACKFILL_WRITER = """
UPDATE memories SET writer = CASE
    WHEN source LIKE 'dream:%' THEN source
    WHEN (source = 'agent' OR source LIKE 'item:%') AND nova_id IS NOT NULL
        THEN (SELECT name FROM novas WHERE novas.id = memories.nova_id)
    END
"""
BACKFILL_WRITERS = """
INSERT INTO memory_writers (memory_id, writer, at)
SELECT id, writer, created_at FROM memories WHERE writer IS NOT NULL
"""


def upgrade() -> None:
    with op.batch_alter_table("memories") as batch:
        batch.add_column(sa.Column("writer", sa.String(64), nullable=True))
    op.create_table(
        "memory_writers",
        sa.Column("memory_id", sa.Integer(), sa.ForeignKey("memories.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("writer", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.execute(BACKFILL_WRITER)
    op.execute(BACKFILL_WRITERS)
    op.create_index("ix_sessions_running", "sessions", ["nova_id"],
                    sqlite_where=sa.text("outcome = 'running'"))


def downgrade() -> None:
    op.drop_index("ix_sessions_running", "sessions")
    op.drop_table("memory_writers")
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("writer")
