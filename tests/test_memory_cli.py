"""`torchsm memory add|list|show|forget` through the real CLI: output, --json, bad input,
shared memories across Novas, and on the stream with the server up, down and back."""

from __future__ import annotations

import json
import os
import pwd

import pytest

from helpers import loaded_modules, rows, write_config
from mirror_support import stream_entries
from torchsm.config import Home, load_config
from torchsm.dreams import recall
from torchsm.mirror.streams import MESSAGES_STREAM, FileQueueMirror
from torchsm.storage import store

USER = pwd.getpwuid(os.getuid()).pw_name  # a person at the command line writes as user:NAME


def test_add_list_show_forget(crew):
    assert crew("memory", "add", "torch", "Run the tests with pytest -q",
                TORCHSM_NOVA="torch").out == "remembered 1 for torch\n"
    assert crew("memory", "add", "torch", "run the tests with  PYTEST -q").out == \
        f"strengthened 1 for torch (by user {USER}; strength 2)\n"
    assert crew("memory", "add", "torch", "run the tests with pytest -q").out == \
        f"already remembered 1 for torch (by user {USER}; strength 2)\n"
    assert crew("memory", "add", "torch", "The API is flaky on Mondays",
                TORCHSM_NOVA="torch").out == "remembered 2 for torch\n"
    assert crew("memory", "add", "echo", "echo's own").out == "remembered 3 for echo\n"
    listed = crew("memory", "list", "torch").out.splitlines()
    assert listed[0].split() == ["ID", "NOVA", "KIND", "STRENGTH", "UPDATED", "WRITER",
                                 "SOURCE", "TEXT"]
    assert [line.split()[:6] for line in listed[1:]] == [
        ["1", "torch", "note", "2", listed[1].split()[4], "torch"],
        ["2", "torch", "note", "1", listed[2].split()[4], "torch"]]
    assert len(crew("memory", "list").out.splitlines()) == 4  # every Nova's
    shown = crew("memory", "show", "1").out
    assert shown.startswith("id:        1\nnova:      torch\nkind:      note\nstrength:  2\n")
    assert shown.endswith("\n\nRun the tests with pytest -q\n")
    assert crew("memory", "show", "torch").out == (
        "What Nova torch remembers from earlier sessions (strongest first):\n"
        "- [note, by torch, strength 2] Run the tests with pytest -q\n"
        "- [note, by torch] The API is flaky on Mondays\n")
    assert crew("memory", "forget", "2", "--why", "fixed upstream").out == "forgot 2\n"
    assert "flaky" not in crew("memory", "show", "torch").out
    assert "flaky" not in crew("memory", "list", "torch").out
    everything = crew("memory", "list", "torch", "--all").out.splitlines()
    assert "FORGOTTEN" in everything[0] and everything[-1].split()[0] == "2"
    assert crew("memory", "list", "echo", "--limit", "1").out.count("\n") == 2
    crew("memory", "forget", "3")
    assert crew("memory", "list", "echo").out == "echo: no memories\n"
    assert crew("memory", "show", "echo").out == "echo: no memories\n"


def test_json_output(crew):
    added = crew("memory", "add", "torch", "a note", "--json").json()
    assert set(added) == {"id", "nova", "kind", "text", "key", "source", "writer", "strength",
                          "created_at", "updated_at", "forgotten_at", "forgotten_why",
                          "created", "strengthened", "cut", "mirror"}
    assert (added["nova"], added["kind"], added["strength"], added["created"], added["cut"],
            added["mirror"], added["forgotten_at"]) == ("torch", "note", 1, True, False,
                                                         None, None)
    assert added["created_at"].endswith("Z") and added["source"] == "cli"
    assert added["writer"] == f"user:{USER}"
    again = crew("memory", "add", "torch", "A NOTE", "--json", TORCHSM_NOVA="echo").json()
    assert (again["id"], again["strength"], again["created"], again["strengthened"]) == (
        added["id"], 2, False, True)
    [listed] = crew("memory", "list", "torch", "--json").json()
    assert listed == {k: again[k] for k in listed}
    assert crew("memory", "show", str(added["id"]), "--json").json() == listed
    context = crew("memory", "show", "torch", "--json").json()
    text = ("Shared with every Nova, or written for torch by others (each writer's strongest "
            f"first, at most 3 of each):\n- [note, by user {USER}, strength 2] a note")
    assert context == {"nova": "torch", "budget": 6000, "size": len(json.dumps(text)) - 2,
                       "context": text}
    forgot = crew("memory", "forget", str(added["id"]), "--json").json()
    assert (forgot["forgotten_why"], forgot["mirror"]) == ("forgotten by hand", None)
    assert crew("memory", "list", "--json").json() == []
    assert [m["id"] for m in crew("memory", "list", "--all", "--json").json()] == [added["id"]]
    assert crew("memory", "show", "torch", "--json").json()["context"] == ""


def test_show_gives_exactly_what_the_next_session_gets(crew):
    write_config(Home(crew.home), "[memory]\ncontext_chars = 700\n")
    for n in range(40):
        crew("memory", "add", "torch" if n % 3 else "echo", f"memory {n}: " + "x" * n,
             *(["--shared"] if n % 5 == 0 else []))
    home = Home(crew.home)
    config = load_config(home)
    with store.open_store(home) as db:
        expected = db.read(lambda conn: recall.context_for(conn, config, "torch", 700))
    shown = crew("memory", "show", "torch", "--json").json()
    assert shown["context"] == expected and shown["budget"] == 700 and 0 < shown["size"] <= 700
    assert crew("memory", "show", "torch").out == expected + "\n"
    assert expected.splitlines()[-1].endswith(" more: `torchsm memory list torch`)")


def test_the_agent_remembers_from_inside_its_session(crew):
    added = crew("memory", "add", "torch", "found it", "--json", TORCHSM_NOVA="torch").json()
    assert added["source"] == "agent"
    other = crew("memory", "add", "echo", "not my session", "--json", TORCHSM_NOVA="torch")
    assert other.json()["source"] == "cli"


def test_a_huge_text_is_cut_with_a_warning(crew):
    huge = "long words " * 9_000  # 99,000 characters: an argument may hold 128 KiB
    result = crew("memory", "add", "torch", huge, "--json")
    assert result.err == ("torchsm: warning: the memory text is 99,000 characters: cut to "
                          "2,000 ([memory] max_text_chars)\n")
    added = result.json()
    assert added["cut"] and len(added["text"]) == 2000 and added["text"].endswith("\u2026")
    # the same huge text again is the same memory
    again = crew("memory", "add", "torch", huge, "--json", TORCHSM_NOVA="torch").json()
    assert (again["id"], again["strength"]) == (added["id"], 2)


@pytest.mark.parametrize("args, error", [
    (["add", "torch", ""], "memory text is empty"),
    (["add", "torch", " \n\t "], "memory text is empty"),
    # a byte that is not UTF-8 in argv reaches Python as a lone surrogate (surrogateescape)
    (["add", "torch", "caf\udcc3 au lait"], "memory text is not valid UTF-8 (byte 0xc3 at "
                                           "offset 3)"),
    (["add", "torch", "ok", "--shared", "--kind", "note"], None),
    (["add", "ghost", "hello"], "no Nova named 'ghost'"),
    (["add", "ghost", "hello", "--shared"], "no Nova named 'ghost'"),
    (["add", "Bad Name", "hello"], "invalid Nova name 'Bad Name': use [a-z0-9][a-z0-9_-]{0,31}"),
    (["list", "ghost"], "no Nova named 'ghost'"),
    (["show", "ghost"], "no Nova named 'ghost'"),
    (["show", "99"], "no memory 99"),
    (["forget", "99"], "no memory 99"),
    (["forget", "abc"], "invalid memory id 'abc': ids are positive integers"),
    (["forget", "0"], "invalid memory id '0': ids are positive integers"),
    (["forget", "1", "--why", ""], "the reason is empty"),
    (["forget", "1", "--why", "\udcff"], "the reason is not valid UTF-8 (byte 0xff at offset 0)"),
])
def test_bad_input_is_one_line_and_exit_1(crew, args, error):
    crew("memory", "add", "torch", "the first")
    if error is None:
        crew("memory", *args)
        return
    result = crew.fails("memory", *args)
    assert (result.out, result.err) == ("", f"torchsm: error: {error}\n")
    assert rows(crew, "SELECT id, forgotten_at FROM memories") == [(1, None)]


def test_usage_errors_exit_2(crew):
    assert crew.fails("memory", "add", "torch", code=2).err
    assert crew.fails("memory", "add", "torch", "x", "--kind", "dream", code=2).err
    assert crew.fails("memory", "list", "--limit", "0", code=2).err


def test_forgetting_twice_is_refused(crew):
    crew("memory", "add", "torch", "once")
    crew("memory", "forget", "1", "--why", "obsolete")
    err = crew.fails("memory", "forget", "1").err
    assert err.startswith("torchsm: error: memory 1 is already forgotten (")
    assert err.endswith(": obsolete)\n")


def test_control_characters_never_reach_the_terminal(crew):
    crew("memory", "add", "torch", "evil \x1b]0;owned\x07 \x9b2J text")
    for args in (["list", "torch"], ["show", "1"], ["show", "torch"]):
        out = crew("memory", *args).out
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, args
        assert "\\x1b]0;owned\\x07" in out, args
    assert json.loads(crew("memory", "show", "1", "--json").out)["text"] == \
        "evil \x1b]0;owned\x07 \x9b2J text"


def test_a_shared_memory_reaches_every_nova(crew):
    crew("memory", "add", "torch", "only for torch")
    shared = crew("memory", "add", "torch", "The staging DB is read-only", "--shared")
    assert shared.out == f"remembered 2 for every Nova (by user {USER})\n"
    for nova in ("echo", "helix"):
        context = crew("memory", "show", nova).out
        assert f"- [note, shared, by user {USER}] The staging DB is read-only" in context
        assert "only for torch" not in context
        assert crew("memory", "list", nova, "--json").json()[0]["nova"] is None
    again = crew("memory", "add", "echo", "the staging db is READ-ONLY", "--shared", "--json",
                 TORCHSM_NOVA="echo")
    assert again.json()["strength"] == 2 and "strengthened 2 for every Nova" in crew(
        "memory", "add", "helix", "The staging DB is read-only", "--shared",
        TORCHSM_NOVA="helix").out
    assert f"- [note, shared, by user {USER}, strength 3]" in crew("memory", "show",
                                                                    "torch").out


def test_memory_add_stays_light(crew, redis_db):
    outcome = loaded_modules(crew, "memory", "add", "torch", "x", "--shared",
                             TORCHSM_REDIS_URL=redis_db.url)
    assert (outcome["code"], outcome["heavy"]) == (0, [])


# --- the mirror ---------------------------------------------------------------------------

def memory_entries(server) -> list:
    return [e for e in stream_entries(server, MESSAGES_STREAM) if e.type.startswith("memory")]


def test_a_shared_memory_lands_on_the_stream(crew, redis_db):
    own = crew("memory", "add", "torch", "mine only", "--json",
               TORCHSM_REDIS_URL=redis_db.url).json()
    assert own["mirror"] is None and memory_entries(redis_db) == []
    added = crew("memory", "add", "torch", "Deploys freeze on Fridays", "--shared", "--json",
                 TORCHSM_REDIS_URL=redis_db.url).json()
    assert added["mirror"] == "stream"
    [entry] = memory_entries(redis_db)
    assert (entry.type, entry.nova) == ("memory", "torch")
    assert entry.data == {"memory": added["id"], "kind": "note",
                          "text": "Deploys freeze on Fridays", "key": added["key"],
                          "source": "cli", "writer": f"user:{USER}", "strength": 1,
                          "created": True}
    [(event_id,)] = rows(crew, "SELECT event_id FROM memories WHERE nova_id IS NULL")
    assert entry.event_id == event_id
    forgot = crew("memory", "forget", str(added["id"]), "--json",
                  TORCHSM_REDIS_URL=redis_db.url).json()
    assert forgot["mirror"] == "stream"
    assert [(e.type, e.data["why"] if "why" in e.data else None)
            for e in memory_entries(redis_db)] == [("memory", None),
                                                   ("memory.forgotten", "forgotten by hand")]


def test_a_shared_memory_waits_in_the_file_queue_while_the_server_is_down(crew, start_redis):
    server = start_redis()
    port = server.port
    server.stop()
    added = crew("memory", "add", "echo", "Use the mirror, Luke", "--shared", "--json",
                 TORCHSM_REDIS_URL=server.url)
    assert added.code == 0 and added.json()["mirror"] == "queue"
    home = Home(crew.home)
    assert FileQueueMirror(home.queue_dir).queued()[MESSAGES_STREAM] == 1
    [line] = (home.queue_dir / f"{MESSAGES_STREAM}.jsonl").read_text().splitlines()
    queued = json.loads(line)
    assert (queued["type"], queued["nova"], queued["data"]["text"]) == (
        "memory", "echo", "Use the mirror, Luke")
    assert rows(crew, "SELECT count(*) FROM outbox") == [(0,)]  # delivered: to the queue
    back = start_redis(port=port)
    flushed = crew("mirror", "flush", "--json", TORCHSM_REDIS_URL=back.url).json()
    assert flushed["published"] == 1
    crew("mirror", "flush", TORCHSM_REDIS_URL=back.url)
    [entry] = memory_entries(back)
    assert entry.event_id == queued["event_id"] and entry.data["text"] == "Use the mirror, Luke"
    assert FileQueueMirror(home.queue_dir).queued()[MESSAGES_STREAM] == 0
