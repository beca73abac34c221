"""crash safety: the agent's process per session, and the mirror's outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

A supervisor that dies (kill -9, OOM) leaves its agent running in a process group of its
own. The next supervisor finds it by this pid, makes sure it is the same process (its
start time, so a reused pid is never signalled), stops the group and settles the session
before it starts anything.

An entry for the streams used to be published after the commit of the change it reports,
and was lost when the process died in between; now it is written to `outbox` in the same
transaction and delivered from there (torchsm.mirror.outbox).
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("agent_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("agent_start_ticks", sa.Integer(), nullable=True))
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("nova", sa.String(32), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("outbox")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("agent_start_ticks")
        batch.drop_column("agent_pid")
