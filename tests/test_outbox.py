"""The mirror's outbox (issue 14): a transition committed to SQLite reaches its stream
even when its process is killed with -9 between the commit and the publish. Real
`torchsm transition` processes, killed at random moments, and a real redis-server."""

from __future__ import annotations

import random
import subprocess
import time

from helpers import torchsm_executable
from mirror_support import history_event_ids, per_nova, stream_entries, write_mirror_config
from torchsm import novas
from torchsm.config import load_config
from torchsm.mirror import outbox
from torchsm.mirror.streams import OPS_STREAM

NOVAS = ("torch", "echo")
TIMER = "timer"
PROCESSES = 60


def timed_call(env: dict[str, str]) -> float:
    """How long one whole transition takes on this machine now (of a Nova of its own,
    run to the end: its entries land like the others')."""
    started = time.monotonic()
    subprocess.run([*torchsm_executable(), "transition", TIMER, "cool"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.monotonic() - started


def test_transitions_killed_at_random_moments_lose_no_committed_entry(home, cli, redis_db):
    write_mirror_config(home, redis_db.url)
    config = load_config(home)
    for name in (*NOVAS, TIMER):
        novas.add(home, config, name)
    rng = random.Random(14)
    env = cli.env(TORCHSM_REDIS_URL=redis_db.url)
    for n in range(PROCESSES):
        event = "cool" if n % 2 else "work"
        args = ["transition", rng.choice(NOVAS), event] + (["--force"] if event == "work" else [])
        if n % 10 == 0:  # measured again now and then: the load on the machine moves
            whole_call = timed_call(env)
        proc = subprocess.Popen([*torchsm_executable(), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        # up to a little more than a whole call, as long as one takes on this machine now
        # (a loaded machine stretches it): some die before the commit, some after
        time.sleep(rng.uniform(0.1, 1.2) * whole_call)
        proc.kill()
        proc.wait()
    cli("mirror", "flush", TORCHSM_REDIS_URL=redis_db.url)
    landed = stream_entries(redis_db, OPS_STREAM)
    ids = [e.event_id for e in landed]
    assert len(ids) == len(set(ids)), "an entry landed twice"
    committed = history_event_ids(home)
    killed_commits = sum(len(committed.get(name, [])) for name in NOVAS)
    assert killed_commits >= 5, "too few calls got as far as a commit"
    assert per_nova(landed) == committed  # every committed transition, once, in order
    assert outbox.waiting(home, config) == 0


def test_with_the_mirror_off_nothing_waits_in_the_outbox(home, cli):
    config = load_config(home)
    novas.add(home, config, "torch")
    cli("transition", "torch", "cool")
    assert outbox.waiting(home, config) == 0


def test_an_entry_whose_writer_died_after_the_commit_is_delivered_by_the_next(
        home, cli, redis_db, monkeypatch):
    write_mirror_config(home, redis_db.url)
    config = load_config(home)
    novas.add(home, config, "torch")

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed between the commit and the publish

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "deliver", die)
        try:
            novas.transition(home, config, "torch", "cool")
        except KeyboardInterrupt:
            pass
    assert outbox.waiting(home, config) == 1
    assert [e.type for e in stream_entries(redis_db, OPS_STREAM)] == ["nova.added"]
    novas.transition(home, config, "torch", "meditate")  # any later writer delivers it first
    assert [e.type for e in stream_entries(redis_db, OPS_STREAM)] == [
        "nova.added", "transition", "transition"]
    assert per_nova(stream_entries(redis_db, OPS_STREAM)) == history_event_ids(home)
