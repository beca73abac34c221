"""the fleet's own agent command per Nova, and what a session used: model and cache tokens
(issue 22)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

- `novas.command`: the agent command a Nova keeps (`nova add|set NAME --command ...`), a
  JSON list of words; it wins over the one given to `torchsm up`, so the fleet restarts
  with no arguments. NULL: none kept.
- `sessions.model`, `cache_creation_tokens`, `cache_read_tokens`: what Claude Code's
  result reports beside the input and output tokens, for usage per model, per day and per
  month, read from the ledger.
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("novas") as batch:
        batch.add_column(sa.Column("command", sa.Text(), nullable=True))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("model", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("cache_creation_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cache_read_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("cache_read_tokens")
        batch.drop_column("cache_creation_tokens")
        batch.drop_column("model")
    with op.batch_alter_table("novas") as batch:
        batch.drop_column("command")
