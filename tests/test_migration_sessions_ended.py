"""Migration 0013: the daily cost budget finds the sessions that ended in its window by
index, not by reading the account's whole ledger; and back down again."""

from test_migration_accounts import at_revision, downgrade, query
from torchsm.config import Home
from torchsm.storage import database
from torchsm.storage.store import SCHEMA_REVISION

COSTS_SINCE = ("EXPLAIN QUERY PLAN SELECT s.ended_at, s.cost_usd FROM sessions s JOIN novas n"
               " ON n.id = s.nova_id WHERE n.account = 'default' AND s.ended_at > 0"
               " AND s.cost_usd BETWEEN 0 AND 10000 ORDER BY s.ended_at")


def plan(home: Home) -> str:
    return " | ".join(row[3] for row in query(home, COSTS_SINCE))


def test_the_budgets_query_ranges_over_the_ends_of_each_novas_sessions(home_dir):
    home = at_revision(Home(home_dir), "0012")
    assert "ix_sessions_nova_ended" not in plan(home)
    assert database.upgrade(home) == SCHEMA_REVISION
    assert "USING COVERING INDEX ix_sessions_nova_ended (nova_id=? AND ended_at>?)" in plan(home)
    downgrade(home, "0012")
    assert "ix_sessions_nova_ended" not in plan(home)
