"""The Jepsen-style run's checker (tests/cluster_jepsen.py `check`), on its own: a pure
function over the agents' log lines, the servers' answers and the final state."""

from __future__ import annotations

import cluster_jepsen
from cluster_jepsen import Final, check
from torchsm.cluster import work

KILL = 1000.0


def line(event: str, host: str, pid: int, t: float, item: str = "item-120") -> dict:
    return {"event": event, "item": item, "host": host, "pid": pid, "t": t}


def done(host: str, answer: str = work.DONE, item: str = "item-120") -> dict:
    return {"event": "cluster", "item": item, "fate": "done", "answer": answer,
            "host": host}


def verdict_of(a_end: float, answers: list[dict]):
    """Host a ran the item to its end at `a_end` and was killed at KILL; host b took it
    over after a's lease and ran it to the end, done counted."""
    lines = [line("start", "a", 1, a_end - 4), line("end", "a", 1, a_end),
             line("start", "b", 2, KILL + 3.5), line("end", "b", 2, KILL + 7.5)]
    final = Final(0, 0, [], {"item-120": "b:torch"})
    return check(["item-120"], lines, answers, final, {"a": KILL})


def test_an_end_its_killed_host_never_told_explains_the_second_run():
    """Seen in a .ci/run: the kill landed between a's agent's end and its done (the aim
    checks, then kills, and the agent ended in between). Before, this was 'ended twice'."""
    found = verdict_of(KILL - 0.1, [done("b")])
    assert found.problems(Final(0, 0, [], {})) == []
    assert found.ran_again == {"item-120": 1}


def test_an_end_long_before_the_kill_that_was_never_told_is_a_failure():
    """The end-to-done step takes milliseconds: an end seconds before the kill whose done
    never came is a supervisor that did not tell it, not the kill's moment."""
    found = verdict_of(KILL - cluster_jepsen.TELL_WINDOW_S - 3, [done("b")])
    assert list(found.ended_twice) == ["item-120"]


def test_an_end_whose_done_was_counted_then_run_again_is_a_failure():
    found = verdict_of(KILL - 0.1, [done("a"), done("b")])
    assert list(found.ended_twice) == ["item-120"]
    assert list(found.done_twice) == ["item-120"]


def test_an_end_whose_done_the_server_refused_explains_the_second_run():
    found = verdict_of(KILL - 0.1, [done("a", work.LOST), done("b")])
    assert found.ended_twice == {} and found.ran_again == {"item-120": 1}
