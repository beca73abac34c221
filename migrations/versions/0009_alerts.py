"""alerts that reach a person: one open alert per condition, delivery recorded

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

`alerts` existed for billing and authentication failures (raised by the StopFailure hook
and the supervisor). Each alert now names its condition (`key`): at most one alert per key
is open (`resolved_at` NULL) at a time, a partial unique index makes that hold under
concurrent evaluators. `event_id` is its entry on the coordination stream; `delivery`,
`attempts`, `delivery_at` and `last_error` record what running `[alerts] command` gave.
Existing rows are keyed by their id: they stay as they are, each its own condition.
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("key", sa.String(128), nullable=True))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
        batch.add_column(sa.Column("event_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("delivery", sa.String(16), nullable=False,
                                   server_default="pending"))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("delivery_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    # an alert raised before 0009 was already seen (or not) where it was recorded
    op.execute("UPDATE alerts SET key = 'legacy:' || id, delivery = 'none'")
    op.create_index("ix_alerts_open_key", "alerts", ["key"], unique=True,
                    sqlite_where=sa.text("resolved_at IS NULL"))
    op.create_index("ix_alerts_delivery", "alerts", ["delivery"],
                    sqlite_where=sa.text("delivery IN ('pending', 'sending')"))


def downgrade() -> None:
    op.drop_index("ix_alerts_delivery", "alerts")
    op.drop_index("ix_alerts_open_key", "alerts")
    with op.batch_alter_table("alerts") as batch:
        for column in ("last_error", "delivery_at", "attempts", "delivery", "event_id",
                       "details", "key"):
            batch.drop_column(column)
