"""The issue's chaos test: redis-server is killed (-9) in the middle of 1,000 transitions
from several processes and started again; after a flush the stream holds every transition
exactly once, in each Nova's commit order."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import time
from pathlib import Path

import pytest

from torchsm import novas
from torchsm.config import Home, load_config
from torchsm.mirror.file_queue import FileQueue
from torchsm.mirror.streams import OPS_STREAM

from mirror_support import history_event_ids, per_nova, stream_entries, write_mirror_config

NOVAS = ("torch", "echo", "helix", "vaeris", "synergy")
WORKERS = 4
TRANSITIONS = 1000


def _work(home_path: str, seed: int, count: int) -> None:
    home = Home(Path(home_path))
    config = load_config(home)
    rng = random.Random(seed)
    for _ in range(count):
        name = rng.choice(NOVAS)  # several processes share each Nova
        if rng.random() < 0.6:
            novas.transition(home, config, name, "cool", for_s=3600)
        else:
            novas.transition(home, config, name, "work", force=True)


def history_count(home: Home) -> int:
    conn = sqlite3.connect(home.db_path)
    try:
        return conn.execute("SELECT count(*) FROM history").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.slow
def test_killing_the_server_mid_run_loses_and_duplicates_nothing(home, cli, start_redis):
    server = start_redis(persistent=True)  # acknowledged writes survive kill -9
    write_mirror_config(home, server.url, outage_memory_s=0.1, connect_timeout_s=0.25)
    config = load_config(home)
    for name in NOVAS:
        novas.add(home, config, name)

    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_work, args=(str(home.path), seed, TRANSITIONS // WORKERS))
               for seed in range(WORKERS)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while history_count(home) < TRANSITIONS * 0.3 and time.monotonic() < deadline:
        time.sleep(0.005)
    server.kill()
    killed_at = history_count(home)
    time.sleep(0.5)  # transitions go on meanwhile, into the file queue
    assert FileQueue(home.queue_dir, OPS_STREAM).pending_count() > 0
    server.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    assert killed_at < history_count(home), "the kill did not land mid-run"

    cli("mirror", "flush", TORCHSM_REDIS_URL=server.url)
    landed = stream_entries(server, OPS_STREAM)
    ids = [e.event_id for e in landed]
    assert len(ids) == len(set(ids)), "an entry landed twice"
    committed = history_event_ids(home)
    assert sum(map(len, committed.values())) > TRANSITIONS * 0.6
    assert per_nova(landed) == committed  # every transition, once, in commit order
    assert [e.nova for e in landed if e.type == "nova.added"] == list(NOVAS)
    for name in NOVAS:
        [state] = [r["state"] for r in novas.status(home, config, name)]
        assert server.client().get(f"nova.status.{name}") == state.upper().encode()
