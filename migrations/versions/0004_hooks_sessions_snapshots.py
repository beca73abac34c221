"""hook runs, the session ledger, compaction snapshots, alerts, restart requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _nova_fk() -> sa.Column:
    return sa.Column("nova_id", sa.Integer(), sa.ForeignKey("novas.id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("novas") as batch:
        batch.add_column(sa.Column("restart_requested_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("restart_reason", sa.Text(), nullable=True))
    op.create_table(
        "hook_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        _nova_fk(),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_hook_runs_nova_event_at", "hook_runs", ["nova_id", "event", "at"])
    op.create_index("ix_hook_runs_session", "hook_runs", ["session_id"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        _nova_fk(),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("signal_id", sa.Integer(), nullable=True),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("agent_session_id", sa.String(64), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("num_turns", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("api_error_status", sa.Integer(), nullable=True),
        sa.Column("limit_events", sa.Text(), nullable=True),
        sa.Column("last_assistant_message", sa.Text(), nullable=True),
    )
    op.create_index("ix_sessions_nova_started", "sessions", ["nova_id", "started_at"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        _nova_fk(),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
    )
    op.create_index("ix_snapshots_nova_at", "snapshots", ["nova_id", "at"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("nova", sa.String(32), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_alerts_at", "alerts", ["at"])


def downgrade() -> None:
    for table, index in (("alerts", "ix_alerts_at"), ("snapshots", "ix_snapshots_nova_at"),
                         ("sessions", "ix_sessions_nova_started")):
        op.drop_index(index, table_name=table)
        op.drop_table(table)
    op.drop_index("ix_hook_runs_session", table_name="hook_runs")
    op.drop_index("ix_hook_runs_nova_event_at", table_name="hook_runs")
    op.drop_table("hook_runs")
    with op.batch_alter_table("novas") as batch:
        batch.drop_column("restart_reason")
        batch.drop_column("restart_requested_at")
