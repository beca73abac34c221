"""`message send|list`: the same inbox with the server up or down; --follow."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from torchsm.mirror.streams import MESSAGES_STREAM, FileQueueMirror

from mirror_support import stream_entries
from helpers import torchsm_executable as torchsm_command


def inbox(cli, name: str, url: str, *extra: str) -> list[dict]:
    return cli("message", "list", name, "--json", *extra, TORCHSM_REDIS_URL=url).json()


def test_a_nova_reads_the_same_messages_up_or_down(crew, home, redis_db, refused_url):
    crew("message", "send", "echo", "torch", "up: to torch", TORCHSM_REDIS_URL=redis_db.url)
    crew("message", "send", "helix", "all", "up: to all", TORCHSM_REDIS_URL=redis_db.url)
    crew("message", "send", "echo", "helix", "up: not for torch",
         TORCHSM_REDIS_URL=redis_db.url)
    crew("message", "send", "echo", "all", "down: to all", TORCHSM_REDIS_URL=refused_url)
    down = inbox(crew, "torch", refused_url)
    assert [m["text"] for m in down] == ["up: to torch", "up: to all", "down: to all"]
    assert FileQueueMirror(home.queue_dir).queued()[MESSAGES_STREAM] == 1
    up = inbox(crew, "torch", redis_db.url)  # finds the server back: replays, then reads it
    assert up == down
    assert FileQueueMirror(home.queue_dir).queued()[MESSAGES_STREAM] == 0
    assert [e.data["text"] for e in stream_entries(redis_db, MESSAGES_STREAM)] == [
        "up: to torch", "up: to all", "up: not for torch", "down: to all"]


def test_a_broadcast_is_not_in_its_senders_inbox(crew, redis_db):
    crew("message", "send", "torch", "all", "hello", TORCHSM_REDIS_URL=redis_db.url)
    assert inbox(crew, "torch", redis_db.url) == []
    [got] = inbox(crew, "echo", redis_db.url)
    assert {k: got[k] for k in ("from", "to", "text")} == {
        "from": "torch", "to": "all", "text": "hello"}
    assert got["at"].endswith("Z") and len(got["id"]) == 32


def test_the_stream_brings_messages_from_other_homes(crew, redis_db, tmp_path):
    from torchsm import novas
    from torchsm.config import Home, Config
    from torchsm.storage import database
    from torchsm.work import messages

    elsewhere = Home(tmp_path / "elsewhere")
    database.initialise(elsewhere)
    remote = Config(redis_url=redis_db.url)
    novas.add(elsewhere, remote, "vaeris")
    messages.send(elsewhere, remote, "vaeris", "all", "from another home")
    assert [m["text"] for m in inbox(crew, "torch", redis_db.url)] == ["from another home"]


def test_sqlite_fills_in_what_the_stream_lost(crew, redis_db):
    crew("message", "send", "echo", "torch", "before the restart", TORCHSM_REDIS_URL=redis_db.url)
    redis_db.client().flushall()  # a server without persistence restarted
    crew("message", "send", "echo", "torch", "after", TORCHSM_REDIS_URL=redis_db.url)
    assert [m["text"] for m in inbox(crew, "torch", redis_db.url)] == [
        "before the restart", "after"]
    assert [m["text"] for m in inbox(crew, "torch", redis_db.url, "--limit", "1")] == ["after"]


def test_send_and_list_errors(crew):
    assert crew.fails("message", "send", "torch", "nobody", "hi").err == \
        "torchsm: error: no Nova named 'nobody'\n"
    assert crew.fails("message", "send", "torch", "echo", "  ").err == \
        "torchsm: error: a message needs some text\n"
    assert crew.fails("message", "send", "Bad!", "echo", "x").err.startswith(
        "torchsm: error: invalid Nova name 'Bad!'")
    assert crew.fails("message", "list", "nobody").err == "torchsm: error: no Nova named 'nobody'\n"
    assert crew("message", "list", "torch").out == "torch: no messages\n"


def test_send_text_output(crew):
    out = crew("message", "send", "echo", "torch", "hi there").out
    assert out.startswith("sent ") and out.endswith(" from echo to torch\n")
    listed = crew("message", "list", "torch").out
    assert listed.endswith("  echo -> torch: hi there\n") and listed[:4].isdigit()


@pytest.mark.parametrize("server", ["up", "down"])
def test_follow_prints_new_messages_as_they_come(crew, redis_db, refused_url, server):
    url = redis_db.url if server == "up" else refused_url
    crew("message", "send", "echo", "torch", "already there", TORCHSM_REDIS_URL=url)
    follower = subprocess.Popen(
        [*torchsm_command(), "message", "list", "torch", "--follow", "--json"],
        env=crew.env(TORCHSM_REDIS_URL=url), stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(follower.stdout.readline())["text"] == "already there"
        time.sleep(0.3)
        crew("message", "send", "helix", "all", "news", TORCHSM_REDIS_URL=url)
        crew("message", "send", "helix", "echo", "not for torch", TORCHSM_REDIS_URL=url)
        crew("message", "send", "echo", "torch", "more", TORCHSM_REDIS_URL=url)
        assert json.loads(follower.stdout.readline())["text"] == "news"
        assert json.loads(follower.stdout.readline())["text"] == "more"
    finally:
        follower.terminate()
        follower.wait(10)


# --- hostile entries on the stream (issue 20, finding 9) ----------------------------------

# Anything that can reach the server can XADD to nova.coordination.messages; none of these
# is a message torchsm wrote.
GARBAGE = [
    {"junk": "no fields at all"},
    {"event_id": "g1", "type": "message", "nova": "echo", "at": "2026-01-01T00:00:00Z",
     "data": "{not json"},
    {"event_id": "g2", "type": "message", "nova": "echo", "at": "2026-01-01T00:00:00Z",
     "data": "[1, 2]"},
    {"event_id": "g3", "type": "message", "nova": "echo", "at": "2026-01-01T00:00:00Z",
     "data": json.dumps({"from": "echo", "to": "torch", "text": {"not": "a string"}})},
    {"event_id": "g4", "type": "message", "nova": "echo", "at": "yesterday",
     "data": json.dumps({"from": "echo", "to": "torch", "text": "a bad time"})},
    {"event_id": "g5", "type": "message", "nova": "echo", "at": "2026-01-01T00:00:00Z",
     "data": json.dumps({"from": ["echo"], "to": "torch", "text": "a bad sender"})},
    {b"event_id": b"g6", b"type": b"message", b"nova": b"\xff\xfe", b"at": b"2026",
     b"data": b"\xc3("},
]


def xadd_garbage(server) -> None:
    client = server.client()
    for fields in GARBAGE:
        client.xadd(MESSAGES_STREAM, fields)


def test_malformed_entries_are_skipped_with_a_warning(crew, redis_db):
    crew("message", "send", "echo", "torch", "before", TORCHSM_REDIS_URL=redis_db.url)
    xadd_garbage(redis_db)
    crew("message", "send", "helix", "all", "after", TORCHSM_REDIS_URL=redis_db.url)
    for extra in ((), ("--json",)):
        listed = crew("message", "list", "torch", *extra, TORCHSM_REDIS_URL=redis_db.url)
        assert listed.code == 0, listed.err
        assert listed.err == (f"torchsm: warning: skipped {len(GARBAGE)} malformed entries "
                              f"on {MESSAGES_STREAM}\n")
        if extra:
            assert [m["text"] for m in json.loads(listed.out)] == ["before", "after"]
        else:
            assert listed.out.endswith("  echo -> torch: before\n"
                                       + listed.out.splitlines()[-1] + "\n")
            assert "helix -> all: after" in listed.out and len(listed.out.splitlines()) == 2


def test_follow_skips_malformed_entries_as_they_come(crew, redis_db):
    crew("message", "send", "echo", "torch", "already there", TORCHSM_REDIS_URL=redis_db.url)
    follower = subprocess.Popen(
        [*torchsm_command(), "message", "list", "torch", "--follow", "--json"],
        env=crew.env(TORCHSM_REDIS_URL=redis_db.url), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(follower.stdout.readline())["text"] == "already there"
        time.sleep(0.3)
        xadd_garbage(redis_db)
        crew("message", "send", "echo", "torch", "still here", TORCHSM_REDIS_URL=redis_db.url)
        assert json.loads(follower.stdout.readline())["text"] == "still here"
        assert follower.poll() is None
    finally:
        follower.terminate()
        follower.wait(10)
    warnings = follower.stderr.read().splitlines()
    # one line per read: XREAD may hand the garbage over in more than one batch
    found = [re.fullmatch(rf"torchsm: warning: skipped (\d+) malformed entr(y|ies) on "
                          rf"{MESSAGES_STREAM}", line) for line in warnings]
    assert all(found), warnings
    assert sum(int(m.group(1)) for m in found) == len(GARBAGE)
