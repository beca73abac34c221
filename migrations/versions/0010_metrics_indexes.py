"""metrics over a long window read covering indexes, not table rows (issue 16)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

`torchsm metrics --since 30d` read every history, session and hook-run row of the window
from the table (the window functions and totals use columns the indexes lacked) and scanned
`messages`. Three indexes are widened in place (the same count of indexes, so a write still
updates as many index b-trees: the hook path's insert into `hook_runs` and `history` costs
what it did, BENCHMARKS.md) and `messages` gains one on `at`:

  history    (nova_id, at)           -> (nova_id, at, id, event, limit_hold, reason)
  sessions   (nova_id, started_at)   -> (nova_id, started_at, id, ended_at, kind, outcome,
                                         cost_usd, api_error_status, signal_id)
  hook_runs  (nova_id, event, at)    -> (nova_id, event, at, outcome, duration_ms)
  messages   new (at, sender, recipient)

Every query the narrower indexes served (a dream's span, the bang count, the ledger) keeps
its prefix. `id` follows the time so that an `ORDER BY at, id` walks the index unsorted.
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

WIDENED = (
    ("ix_history_nova_at", "history", ["nova_id", "at"],
     ["nova_id", "at", "id", "event", "limit_hold", "reason"]),
    ("ix_sessions_nova_started", "sessions", ["nova_id", "started_at"],
     ["nova_id", "started_at", "id", "ended_at", "kind", "outcome", "cost_usd",
      "api_error_status", "signal_id"]),
    ("ix_hook_runs_nova_event_at", "hook_runs", ["nova_id", "event", "at"],
     ["nova_id", "event", "at", "outcome", "duration_ms"]),
)


def upgrade() -> None:
    for name, table, _, wide in WIDENED:
        op.drop_index(name, table)
        op.create_index(name, table, wide)
    op.create_index("ix_messages_at", "messages", ["at", "sender", "recipient"])


def downgrade() -> None:
    op.drop_index("ix_messages_at", "messages")
    for name, table, narrow, _ in WIDENED:
        op.drop_index(name, table)
        op.create_index(name, table, narrow)
