"""`transition` with the server up, refused, black-holed, and back; the hot path stays light."""

from __future__ import annotations

import time

import pytest

from torchsm import novas
from torchsm.config import load_config
from torchsm.mirror.shared_state import MirrorMemory
from torchsm.mirror.streams import MESSAGES_STREAM, OPS_STREAM, FileQueueMirror

from helpers import loaded_modules
from mirror_support import (entry, history_event_ids, per_nova, stream_entries,
                            write_mirror_config)

def run_probe(cli, *args, url: str) -> dict:
    outcome = loaded_modules(cli, *args, TORCHSM_REDIS_URL=url)
    outcome.pop("out")
    return outcome


def queued(home) -> dict:
    return FileQueueMirror(home.queue_dir).queued()


def test_transition_publishes_to_the_stream_without_importing_redis(cli, home, redis_db):
    cli("nova", "add", "torch")
    outcome = run_probe(cli, "transition", "torch", "cool", "--for", "5", url=redis_db.url)
    assert outcome == {"code": 0, "heavy": []}
    [published] = stream_entries(redis_db, OPS_STREAM)
    assert (published.type, published.nova, published.data["to"]) == (
        "transition", "torch", "cooling")
    assert published.event_id == history_event_ids(home)["torch"][0]
    assert redis_db.client().get("nova.status.torch") == b"COOLING"


def test_replaying_on_the_hot_path_stays_light_too(cli, home, redis_db, refused_url):
    cli("nova", "add", "torch")
    cli("transition", "torch", "cool", "--for", "5", TORCHSM_REDIS_URL=refused_url)
    cli("message", "send", "torch", "all", "queued meanwhile", TORCHSM_REDIS_URL=refused_url)
    assert queued(home) == {OPS_STREAM: 1, MESSAGES_STREAM: 1}
    outcome = run_probe(cli, "transition", "torch", "work", "--force", url=redis_db.url)
    assert outcome == {"code": 0, "heavy": []}
    assert queued(home) == {OPS_STREAM: 0, MESSAGES_STREAM: 0}
    assert [e.data["to"] for e in stream_entries(redis_db, OPS_STREAM)] == [
        "cooling", "working"]
    assert len(stream_entries(redis_db, MESSAGES_STREAM)) == 1


# Timing here allows for a loaded machine: a timeout is checked from below (load can only
# lengthen a wait), "it did not try again" by counting the silent server's connections or
# by a bound of half the timeout, and "promptly" only against the seconds that a client's
# default retries would cost.
TIMEOUT_S = 1.0


@pytest.mark.parametrize("blackhole", ["refused_url", "silent_url", "dropping_url"])
def test_transition_succeeds_promptly_whatever_the_server_does(cli, home, blackhole,
                                                               request, silent_server):
    url = request.getfixturevalue(blackhole)
    cli("nova", "add", "torch")
    timings = []
    for event in ("cool", "work", "dream"):
        start = time.monotonic()
        outcome = run_probe(cli, "transition", "torch", event, "--force", url=url)
        timings.append(time.monotonic() - start)
        assert outcome == {"code": 0, "heavy": []}
    assert queued(home)[OPS_STREAM] == 3
    # the first call pays at most the connect/reply timeout (0.25 s), not a retrying
    # client's seconds; the next ones remember the outage and do not try again
    assert timings[0] < 3.0, timings
    assert MirrorMemory(home.queue_dir, url).last_outage() is not None
    if blackhole == "silent_url":
        assert silent_server.connections() == 1


@pytest.mark.parametrize("blackhole", ["silent_url", "dropping_url"])
def test_a_black_hole_costs_one_timeout_then_nothing(home, torch, blackhole, request,
                                                     silent_server):
    url = request.getfixturevalue(blackhole)
    write_mirror_config(home, url, connect_timeout_s=TIMEOUT_S)
    cfg = load_config(home)
    start = time.monotonic()
    novas.transition(home, cfg, "torch", "cool", for_s=5)
    first = time.monotonic() - start
    start = time.monotonic()
    novas.transition(home, cfg, "torch", "work", force=True)
    second = time.monotonic() - start
    assert first >= TIMEOUT_S * 0.9 and second < TIMEOUT_S / 2, (first, second)
    if blackhole == "silent_url":
        assert silent_server.connections() == 1


def test_the_outage_is_forgotten_after_its_memory_and_the_queue_replays_first(
        home, torch, redis_db, refused_url):
    write_mirror_config(home, refused_url, outage_memory_s=0.2)
    down = load_config(home)
    for event in ("cool", "work"):
        novas.transition(home, down, "torch", event, force=True)
    write_mirror_config(home, redis_db.url, outage_memory_s=0.2)
    back = load_config(home)
    novas.transition(home, back, "torch", "dream")
    assert queued(home)[OPS_STREAM] == 0
    assert per_nova(stream_entries(redis_db, OPS_STREAM)) == history_event_ids(home)


def test_an_outage_of_the_same_url_is_remembered_then_retried(home, torch, redis_db):
    write_mirror_config(home, redis_db.url, outage_memory_s=0.3)
    cfg = load_config(home)
    MirrorMemory(home.queue_dir, redis_db.url).record_outage(time.time(), "pretend")
    novas.transition(home, cfg, "torch", "cool", for_s=5)
    assert queued(home)[OPS_STREAM] == 1 and stream_entries(redis_db, OPS_STREAM) == []
    time.sleep(0.35)
    novas.transition(home, cfg, "torch", "work", force=True)
    assert queued(home)[OPS_STREAM] == 0
    assert [e.data["to"] for e in stream_entries(redis_db, OPS_STREAM)] == [
        "cooling", "working"]
    assert MirrorMemory(home.queue_dir, redis_db.url).last_outage() is None


def test_a_silent_server_costs_one_short_timeout_even_with_a_queue(home, torch,
                                                                   silent_server):
    FileQueueMirror(home.queue_dir).publish(OPS_STREAM, entry(0))
    write_mirror_config(home, silent_server.url, outage_memory_s=0.0,
                        connect_timeout_s=TIMEOUT_S)
    cfg = load_config(home)
    start = time.monotonic()
    novas.transition(home, cfg, "torch", "cool", for_s=5)  # tries to replay first
    assert time.monotonic() - start < 2 * TIMEOUT_S  # one timeout, not the replay's and
    assert silent_server.connections() == 1          # the publish's each
    assert queued(home)[OPS_STREAM] == 2
