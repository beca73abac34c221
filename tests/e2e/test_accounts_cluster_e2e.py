"""One subscription account shared by three hosts (issue 23, point 2's last target): each
host its own home with `[cluster] enabled` on one real redis-server, one Nova each under
its own `torchsm run`, the real Claude Code (pinned) in subscription mode against one
stand-in Account: a window of W seconds allowing N requests from every host together.

Targets, as on one host (test_accounts_e2e.py): 0 requests refused across the hosts and
every whole window used to at least 90 %. The run takes about the time it plays (34 s:
two whole windows)."""

import pytest

from account_runs import Plan, play
from test_accounts_e2e import every_whole_window_used_and_none_refused

# Run apart from the parallel tests (scripts/test): it counts requests per window of a
# few seconds.
pytestmark = pytest.mark.serial


def test_three_hosts_on_one_account_share_each_window_and_none_is_refused(
        claude_bin, tmp_path, redis_db):
    hosts = {"n1": "alpha", "n2": "beta", "n3": "gamma"}
    plan = Plan({name: "shared" for name in hosts}, window_s=15, allowance={"shared": 9},
                run_s=34, hosts=hosts, redis_url=redis_db.url)
    played = play(plan, tmp_path / "homes", claude_bin, tmp_path)
    for window in played.per_host("shared"):
        print(window)
    every_whole_window_used_and_none_refused(played, "shared")
    assert all(played.done[n] > 0 for n in hosts), played.done
    # every host took part: the account was shared, not won by one host
    used = {host for w in played.per_host("shared") for host in w["hosts"]}
    assert used == set(hosts.values()), played.per_host("shared")
