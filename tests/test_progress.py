"""The session-level no-progress breaker: the rule on its own, and the supervisor acting on
it with real agent processes on a real database."""

import json

import pytest

from supervisor_support import T0, FakeClock, agent_script, config_with, history, supervisor
from torchsm import novas
from torchsm.endings.breaker import Ending
from torchsm.endings.breaker import no_progress
from torchsm.work import wake, work_queue

BASE = 'redis_url = "off"\n'


def ending(outcome="ok", error=None, status=None, message=None, item=None) -> Ending:
    return Ending(outcome, error, status, message, item)


@pytest.mark.parametrize("endings, why", [
    ([ending("crashed", "crashed 0.1s after the start: exit status 1"),
      ending("crashed", "crashed 0.3s after the start: exit status 1"),
      ending("crashed", "crashed 0.2s after the start: exit status 1")], "the same error"),
    ([ending(item="failed"), ending("failed", "x", item="dead"), ending(item="failed")],
     "each failed their work item"),
    ([ending(message="I cannot do this."), ending(message="I cannot  do this.\n"),
      ending(message="I cannot do this.")], "the same message"),
])
def test_three_sessions_that_end_the_same_way_make_no_progress(endings, why):
    assert why in no_progress(endings, 3)


@pytest.mark.parametrize("endings", [
    [ending(message="a"), ending(message="b"), ending(message="a")],
    [ending("failed", "x"), ending("failed", "y"), ending("failed", "x")],
    [ending(item="failed"), ending(item="done"), ending(item="failed")],
    [ending(), ending(), ending()],  # clean sessions without a message
    [ending(message="same"), ending(message="same")],  # fewer than n
    [ending(message="Done.", item="done")] * 3,  # the same words, but items finished
])
def test_sessions_that_differ_make_progress(endings):
    assert no_progress(endings, 3) is None


def test_the_breaker_is_off_at_zero():
    assert no_progress([ending(message="x")] * 5, 0) is None


def add_items(home, config, count):
    with work_queue.open_queue(home, config) as q:
        return [q.add(f"task {n}", now=T0 - 60).id for n in range(count)]


def cools(home) -> list[tuple]:
    return [(h[0], h[3] - h[2], h[4]) for h in history(home) if h[0] in ("cool", "meditate")]


def test_sessions_ending_with_the_same_message_cool_with_growing_backoff(torch_home, tmp_path):
    config = config_with(BASE + "[safety]\ncooldown_jitter = 0\n")
    for n in range(12):  # sessions without items: nothing says they finished anything
        wake.send(torch_home, config, "torch", f"look at the build {n}", now=T0 - 7000 + n)
    said = {"type": "assistant", "message": {"content": [
        {"type": "text", "text": "I am stuck on the same thing."}]}}
    command = agent_script(tmp_path, f"print({json.dumps(json.dumps(said))})")
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock)
    clock.at(T0 + 3 * 3600, sup.stop.set)
    sup.run()
    waits = cools(torch_home)
    assert [w[0] for w in waits[:4]] == ["cool", "cool", "cool", "meditate"]
    assert [w[1] for w in waits[:3]] == [60, 120, 240]
    assert all("no progress: 3 sessions in a row ended with the same message" in w[2]
               for w in waits[:4])


def test_sessions_that_each_fail_their_item_cool_and_say_why(torch_home, tmp_path):
    config = config_with(BASE)
    add_items(torch_home, config, 5)
    command = agent_script(tmp_path, """
        import os, subprocess, sys
        subprocess.run([sys.executable, "-m", "torchsm", "queue", "fail",
                        os.environ["TORCHSM_ITEM"], "--error", "not doable"], check=True)
    """)
    env = {"TORCHSM_REDIS_URL": "off"}
    clock = FakeClock()
    sup = supervisor(torch_home, config, command, clock, max_sessions=3)
    sup.base_env.update(env)
    sup.run()
    [row] = novas.status(torch_home, config, "torch")
    assert row["state"] == "cooling"
    assert row["reason"] == "no progress: 3 sessions in a row each failed their work item"


def test_repeated_crashes_say_they_make_no_progress(torch_home):
    config = config_with(BASE)
    add_items(torch_home, config, 5)
    clock = FakeClock()
    sup = supervisor(torch_home, config, ["false"], clock, max_sessions=3)
    sup.run()
    reasons = [w[2] for w in cools(torch_home)]
    assert reasons[0].startswith("session 1 crashed") and reasons[1].startswith("session 2")
    assert reasons[2].startswith("no progress: 3 sessions in a row ended with the same error")
