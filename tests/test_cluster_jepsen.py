"""Issue 23, point 2: the cluster's work in the manner of Jepsen's queue checks. Three
hosts (homes a, b, c, two supervised Novas each, each host behind a TCP proxy of its
own) run 200 cluster items while a nemesis cuts host b off past the lease, pauses host
c's supervisors (SIGSTOP) past the lease, restarts redis-server with its data, and kills
host a with -9 (never started again). The harness is tests/cluster_jepsen.py."""

from __future__ import annotations

import pytest

import cluster_jepsen

# Run apart from the parallel tests (scripts/test): six supervisors, a lease of 3 s.
pytestmark = pytest.mark.serial


def test_three_hosts_lose_nothing_and_never_run_an_item_twice_at_once(tmp_path):
    outcome = cluster_jepsen.run(tmp_path / "jepsen", cluster_jepsen.Options(items=200))
    print(outcome.summary())
    verdict, final = outcome.verdict, outcome.final
    summary = f"\n{outcome.summary()}\nfiles: {tmp_path / 'jepsen'}"
    kinds = [what.split(" ")[0] for _, what in outcome.events]
    assert [k for k in kinds if k in ("cut", "pause", "restart", "kill")] == [
        "cut", "pause", "restart", "kill"], summary
    assert outcome.added_again == 20, summary
    assert verdict.takeovers, summary  # the killed host's item ran elsewhere
    # a run of the host cut off, and one of the host paused, were stopped in time
    assert verdict.stopped.get("b") and verdict.stopped.get("c"), summary
    # an item goes back uncounted for a stopped session (some stopped before their agent
    # logged: the lease at risk as the server restarts) or a supervisor's stop, never
    # for a refused start: admission is asked before the claim (measured before the fix:
    # 162 releases, after it 3 and 6, with 3 and 4 runs stopped)
    assert verdict.released <= sum(verdict.stopped.values()) + 6, summary
    assert verdict.problems(final) == [], summary
