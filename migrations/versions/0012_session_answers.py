"""how each session's ending was answered, recorded on the session (issue 21)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

The StopFailure hook and the supervisor's settle step both hear how a session ends; the
one that hears it first answers it (torchsm.endings.responses decides,
torchsm.endings.answers applies) and records the answer here, so the other asks "was this session answered?" instead of
comparing the Nova's `since` with the session's start. `answer` is a responses.Kind value
(nothing | back_off | cool | hold_account | meditate_for_a_person | no_progress).
"""
from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("answer", sa.String(24), nullable=True))
        batch.add_column(sa.Column("answered_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("answered_at")
        batch.drop_column("answer")
