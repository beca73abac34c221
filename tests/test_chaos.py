"""The chaos test of issue 14 (point 6): over a run of at least 50 work items, supervisors
killed with -9 (and started again at once, as a service manager would), hook and
transition processes killed with -9, and redis-server killed for a few seconds; a
stand-in agent logs each run of its item. Target: no item run to the end twice, none
lost, no orphan, and every committed transition in the ops stream exactly once, in each
Nova's commit order. The harness is tests/chaos_run.py; bench/bench_chaos.py runs it
bigger and several times (BENCHMARKS.md, Reliability)."""

from __future__ import annotations

import pytest

import chaos_run

# Run apart from the parallel tests (scripts/test): its kills are aimed at moments
# milliseconds wide.
pytestmark = pytest.mark.serial

ITEMS = 50


def test_kill_anything_lose_nothing_run_nothing_twice(start_redis, tmp_path):
    server = start_redis(persistent=True)  # acknowledged writes survive its kill -9
    result = chaos_run.run(tmp_path / "chaos", server,
                           chaos_run.ChaosOptions(items=ITEMS, time_limit_s=45))
    print(result.summary())
    summary = f"\n{result.summary()}\nfiles: {tmp_path / 'chaos'}"

    # the chaos happened as planned
    assert result.items >= 50
    assert result.kills["supervisor"] >= 5, summary
    assert result.process_kills >= 5, summary
    assert len(result.outages) == 1, summary
    assert not result.unexpected_exits, summary  # each restarted supervisor ran
    assert not result.not_stopped_by_sigterm, summary

    # the targets
    assert result.finished and not result.lost, summary  # (claims without a session too)
    assert not result.orphans, summary
    assert not result.overlaps, summary  # never a second agent beside an orphan
    assert result.left_running == 0, summary
    stream = result.stream
    assert stream.missing == 0 and stream.duplicated == 0 and stream.extra == 0, summary
    assert not stream.out_of_order, summary
    assert stream.outbox_waiting == 0 and stream.queued == 0, summary
    assert stream.committed > ITEMS / 4, summary  # the agents' transitions committed
    assert not stream.without_started and not stream.without_ended, summary
    assert not result.run_twice, summary
