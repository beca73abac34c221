"""`message send|list`: the same inbox with the server up or down; --follow."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from torchsm.mirror import MESSAGES_STREAM, FileQueueMirror

from mirror_support import stream_entries
from helpers import torchsm_executable as torchsm_command


@pytest.fixture
def crew(cli, home):
    from torchsm import novas
    from torchsm.config import Config

    for name in ("torch", "echo", "helix"):
        novas.add(home, Config(redis_url="off"), name)
    return cli


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
    from torchsm.config import Home, Config
    from torchsm import db, messages, novas

    elsewhere = Home(tmp_path / "elsewhere")
    db.initialise(elsewhere)
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
