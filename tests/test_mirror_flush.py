"""`mirror flush` killed halfway and run again, and two flushes racing: each entry once."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from torchsm.mirror.streams import OPS_STREAM, FileQueueMirror

from mirror_support import entry, stream_entries
from helpers import torchsm_executable as torchsm_command

QUEUED = 30_000


def fill_queue(home, count: int = QUEUED) -> list:
    entries = [entry(i, nova=f"n{i % 7}") for i in range(count)]
    path = home.queue_dir / f"{OPS_STREAM}.jsonl"
    path.write_bytes(b"".join(e.to_line() + b"\n" for e in entries))
    return entries


def start_flush(cli, url: str) -> subprocess.Popen:
    return subprocess.Popen([*torchsm_command(), "mirror", "flush", "--json"],
                            env=cli.env(TORCHSM_REDIS_URL=url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def client_ids(client) -> set[str]:
    return {c["id"] for c in client.client_list()}


def length_once_the_flush_is_disconnected(client, connected_before: set[str]) -> int:
    """The stream's length after the server has run what the killed flush had already sent.

    The kill does not stop the server: a pipeline already in its socket is still
    executed, so a length read at once can be short of what has landed. Redis drops
    a client only after reading its socket to the end, so once the killed connection
    has left CLIENT LIST, the length is final.
    """
    deadline = time.monotonic() + 30
    while client_ids(client) - connected_before and time.monotonic() < deadline:
        time.sleep(0.01)
    return client.xlen(OPS_STREAM)


def assert_exactly_once_in_order(server, entries) -> None:
    landed = stream_entries(server, OPS_STREAM)
    assert len(landed) == len(entries)
    assert [e.event_id for e in landed] == [e.event_id for e in entries]


def test_a_flush_killed_halfway_and_run_again_lands_each_entry_once(cli, home, redis_db):
    entries = fill_queue(home)
    client = redis_db.client()
    connected_before = client_ids(client)
    flush = start_flush(cli, redis_db.url)
    deadline = time.monotonic() + 30
    while client.xlen(OPS_STREAM) < QUEUED // 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    flush.send_signal(signal.SIGKILL)
    flush.wait()
    halfway = length_once_the_flush_is_disconnected(client, connected_before)
    assert 0 < halfway < QUEUED, "the kill did not land halfway"
    result = cli("mirror", "flush", "--json", TORCHSM_REDIS_URL=redis_db.url).json()
    assert result["published"] == QUEUED - halfway
    assert_exactly_once_in_order(redis_db, entries)
    assert FileQueueMirror(home.queue_dir).queued()[OPS_STREAM] == 0


def test_two_racing_flushes_land_each_entry_once(cli, home, redis_db):
    entries = fill_queue(home)
    flushes = [start_flush(cli, redis_db.url) for _ in range(2)]
    outputs = [f.communicate(timeout=120) for f in flushes]
    assert [f.returncode for f in flushes] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert sum(r["published"] for r in reports) == QUEUED
    assert_exactly_once_in_order(redis_db, entries)
