"""torchsm.dreams.memory on a real SQLite file: dedupe and strength, forgetting, the ranking and
the budget, consolidation and the cap, and the episodes finished items leave (from a
supervised session, a Stop-hook continuation and the agent finishing its item itself)."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from helpers import Cli
from supervisor_support import T0, FakeClock, agent_script, config_with, supervisor
from test_hooks import hook, payload
from torchsm import novas
from torchsm.config import Config, Home, MemoryConfig
from torchsm.dreams import memory, recall
from torchsm.errors import InvalidMemory, InvalidName, MemoryNotFound, NovaNotFound
from torchsm.storage import store
from torchsm.work import work_queue
from torchsm.work.prompts import json_size

OFF = Config(redis_url="off")
DAY = 86400.0


@pytest.fixture
def crew_home(home):
    """Novas torch and echo on the fixed clock, two hours before T0."""
    for name in ("torch", "echo"):
        novas.add(home, OFF, name, now=T0 - 7200)
    return home


def write(home, work):
    with store.open_store(home) as db:
        return db.write(work)


def read(home, work):
    with store.open_store(home) as db:
        return db.read(work)


def add(home, text, *, nova="torch", config=OFF, now=T0, **kw) -> memory.Added:
    """`memory.add`, written by `writer` (default: the Nova itself; torch for a shared one)."""
    writer = kw.pop("writer", nova or "torch")
    return write(home, lambda conn: memory.add(conn, config, nova=nova, kind=kw.pop("kind", "note"),
                                               text=text, now=now, writer=writer, **kw))


def live_texts(home, nova="torch", **kw) -> list[str]:
    return [m.text for m in read(home, lambda conn: memory.live(conn, nova, **kw))]


def sql(home, query, *args):
    conn = sqlite3.connect(home.db_path)
    try:
        with conn:
            return conn.execute(query, args).fetchall()
    finally:
        conn.close()


# --- add: dedupe, strength, cut, refusals -------------------------------------------------

def test_the_same_text_again_strengthens_the_memory_instead_of_adding_one(crew_home):
    first = add(crew_home, "Run the tests with pytest -q", now=T0)
    same = add(crew_home, "run the tests with pytest -q", now=T0 + 30)  # the same writer
    assert (same.created, same.strengthened, same.memory.strength) == (False, False, 1)
    assert same.memory.updated_at == T0  # nothing changed: a writer counts once
    again = add(crew_home, "  run THE tests\twith   pytest -q \n", now=T0 + 60, writer="echo")
    assert (first.created, again.created, again.strengthened) == (True, False, True)
    assert again.memory.id == first.memory.id
    assert (again.memory.strength, again.memory.updated_at) == (2, T0 + 60)
    assert again.memory.created_at == T0 and again.memory.text == "Run the tests with pytest -q"
    assert again.memory.writer == "torch"  # who wrote it first
    assert add(crew_home, "run the tests with pytest -q", writer="echo").memory.strength == 2
    # another text, another Nova, or shared: a memory of its own
    assert add(crew_home, "Run the tests with pytest -x").created
    assert add(crew_home, "Run the tests with pytest -q", nova="echo").created
    assert add(crew_home, "Run the tests with pytest -q", nova=None).created
    assert len(sql(crew_home, "SELECT id FROM memories")) == 4
    # an explicit key says which memory it is, whatever the text
    keyed = add(crew_home, "flaky: test_x", key="flaky:test_x")
    assert add(crew_home, "flaky: test_x (again)", key="flaky:test_x",
               writer="dream:1").memory.id == keyed.memory.id


def test_a_long_text_is_cut_and_empty_or_odd_text_is_refused(crew_home):
    config = OFF._replace(memory=MemoryConfig(max_text_chars=100))
    long = add(crew_home, "x" * 99 + "y" * 400, config=config)
    assert long.cut and long.memory.text == "x" * 99 + "\u2026"
    assert not add(crew_home, "z" * 100, config=config).cut
    with pytest.raises(InvalidMemory, match="^memory text is empty$"):
        add(crew_home, " \n\t ")
    with pytest.raises(InvalidMemory,
                       match=r"^memory text is not valid UTF-8 \(byte 0xff at offset 5\)$"):
        add(crew_home, "caf\u00e9\udcffx")  # é is two bytes: 0xff is the sixth
    with pytest.raises(InvalidMemory, match=r"a lone surrogate U\+D800 at offset 0"):
        add(crew_home, "\ud800")
    with pytest.raises(NovaNotFound, match="^no Nova named 'ghost'$"):
        add(crew_home, "hello", nova="ghost")
    with pytest.raises(InvalidName):
        add(crew_home, "hello", nova="Not A Name")
    with pytest.raises(InvalidMemory, match="unknown memory kind 'dream'"):
        add(crew_home, "hello", kind="dream")
    assert len(sql(crew_home, "SELECT id FROM memories")) == 2  # nothing of the refused ones


def test_forgetting_marks_a_memory_and_keeps_it(crew_home):
    kept = add(crew_home, "keep me").memory
    gone = add(crew_home, "forget me").memory
    row = write(crew_home, lambda conn: memory.forget(conn, gone.id, T0 + 5, "wrong"))
    assert (row.forgotten_at, row.forgotten_why) == (T0 + 5, "wrong")
    assert live_texts(crew_home) == ["keep me"]
    listed = read(crew_home, lambda conn: memory.listing(conn, "torch", include_forgotten=True))
    assert [m.id for m in listed] == [kept.id, gone.id]  # live first, then forgotten
    with pytest.raises(InvalidMemory, match=f"^memory {gone.id} is already forgotten"):
        write(crew_home, lambda conn: memory.forget(conn, gone.id, T0 + 6, "again"))
    with pytest.raises(MemoryNotFound, match="^no memory 999$"):
        write(crew_home, lambda conn: memory.forget(conn, 999, T0, "x"))
    # the same text again is a new memory: a forgotten one is not brought back
    assert add(crew_home, "forget me").created


# --- ranking and the budget ---------------------------------------------------------------

def test_ranking_is_strength_then_kind_then_recency(crew_home):
    add(crew_home, "old note", now=T0)
    add(crew_home, "an episode", kind="episode", now=T0 + 10)
    add(crew_home, "an insight", kind="insight", now=T0 + 1, writer="dream:1")
    add(crew_home, "new note", now=T0 + 20)
    add(crew_home, "shared note", nova=None, now=T0 + 15)
    add(crew_home, "strong episode", kind="episode", now=T0)
    add(crew_home, "strong episode", kind="episode", now=T0 + 2, writer="dream:2")  # strength 2
    add(crew_home, "echo's own", nova="echo", now=T0 + 30)
    add(crew_home, "echo told torch", now=T0 + 3, writer="echo")
    assert live_texts(crew_home) == ["strong episode", "an insight", "new note", "shared note",
                                "echo told torch", "old note", "an episode"]
    assert live_texts(crew_home, include_shared=False, limit=3) == [
        "strong episode", "an insight", "new note"]
    context = read(crew_home, lambda conn: recall.context_for(conn, OFF, "torch", 6000))
    # its own, then what others wrote (shared, or for it): each line says who wrote it
    assert context.splitlines() == [
        "What Nova torch remembers from earlier sessions (strongest first):",
        "- [episode 2027-01-15, by torch, strength 2] strong episode",
        "- [insight, by dream 1] an insight",
        "- [note, by torch] new note",
        "- [note, by torch] old note",
        "- [episode 2027-01-15, by torch] an episode",
        "Shared with every Nova, or written for torch by others (each writer's strongest "
        "first, at most 3 of each):",
        "- [note, shared, by torch] shared note",
        "- [note, by echo] echo told torch"]


def test_no_memories_no_context(crew_home):
    assert read(crew_home, lambda conn: recall.context_for(conn, OFF, "torch", 6000)) == ""
    add(crew_home, "echo's own", nova="echo")
    assert read(crew_home, lambda conn: recall.context_for(conn, OFF, "torch", 6000)) == ""
    add(crew_home, "mine")
    assert read(crew_home, lambda conn: recall.context_for(conn, OFF, "torch", 0)) == ""
    with pytest.raises(NovaNotFound):
        read(crew_home, lambda conn: recall.context_for(conn, OFF, "ghost", 6000))


def test_the_context_keeps_whole_lines_while_they_fit_then_counts_the_rest(crew_home):
    for n in range(30):  # each line: "- [note, by torch] memory NN: " + 60 characters
        add(crew_home, f"memory {n:02d}: " + "m" * 60, now=T0 + n)
    context = read(crew_home, lambda conn: recall.context_for(conn, OFF, "torch", 600))
    lines = context.splitlines()
    assert json_size(context) <= 600
    shown = lines[1:-1]
    assert shown and all(line.endswith("m" * 60) for line in shown)  # whole lines only
    # newest first (all strength 1, all notes), and the rest counted
    assert [line[len("- [note, by torch] memory "):][:2] for line in shown] == [
        f"{n:02d}" for n in range(29, 29 - len(shown), -1)]
    assert lines[-1] == f"({30 - len(shown)} more: `torchsm memory list torch`)"


def test_a_memory_too_long_for_the_room_left_is_cut_with_a_pointer(crew_home):
    add(crew_home, "short one", now=T0 + 1)
    long = add(crew_home, "word " * 380, now=T0).memory  # 1,900 characters
    context = read(crew_home, lambda conn: recall.context_for(conn, OFF, "torch", 1000))
    assert json_size(context) <= 1000
    assert "- [note, by torch] short one" in context
    assert f"`torchsm memory show {long.id}` prints it]" in context
    assert "more:" not in context  # both are there, one of them cut


# the heading, "(19 more: ...)" and the first line "- [insight, by torch] 19 plain" whole
THRESHOLD = 138


@pytest.mark.parametrize("budget", [1, 40, 100, THRESHOLD - 1, THRESHOLD, 500, 1000, 3000, 6000,
                                    9000])
def test_the_context_never_exceeds_its_budget_as_a_hook_prints_it(crew_home, budget):
    """Too small a budget for the heading and a line gives nothing rather than too much."""
    # escapes and non-ASCII cost more inside JSON than their length
    texts = ["\x1b[2J" * 50, "漢字" * 300, "\"quoted\" \\ back" * 40, "😀" * 200, "plain"]
    for n, text in enumerate(texts * 4):
        add(crew_home, f"{n} {text}", now=T0 + n, kind=("note", "insight", "episode")[n % 3])
    context = read(crew_home, lambda conn: recall.context_for(conn, OFF, "torch", budget))
    assert json_size(context) <= budget
    assert (context != "") == (budget >= THRESHOLD)


# --- consolidation and the cap ------------------------------------------------------------

def insert(home, nova, kind, text, key, strength, updated_at):
    nova_id = None if nova is None else sql(home, "SELECT id FROM novas WHERE name = ?",
                                            nova)[0][0]
    return sql(home, "INSERT INTO memories (nova_id, kind, text, key, source, strength,"
               " created_at, updated_at) VALUES (?, ?, ?, ?, 'test', ?, ?, ?) RETURNING id",
               nova_id, kind, text, key, strength, updated_at, updated_at)[0][0]


def states(home) -> dict[str, tuple]:
    return {text: (strength, why) for text, strength, why in sql(
        home, "SELECT text, strength, forgotten_why FROM memories")}


def test_consolidate_merges_ages_out_and_caps(crew_home):
    now = T0 + 60 * DAY
    old = now - 31 * DAY
    keeper = insert(crew_home, "torch", "note", "dup a1", "a", 1, now - 50)
    insert(crew_home, "torch", "note", "dup a2", "a", 2, now - 10)
    insert(crew_home, "torch", "note", "dup a3", "a", 1, now - 30)
    other = insert(crew_home, "torch", "insight", "dup b1", "b", 1, now - 40)
    insert(crew_home, "torch", "insight", "dup b2", "b", 1, now - 20)
    insert(crew_home, "torch", "episode", "old episode", "e1", 1, old)
    insert(crew_home, "torch", "episode", "old strong episode", "e2", 2, old)
    insert(crew_home, "torch", "episode", "fresh episode", "e3", 1, now - 5)
    insert(crew_home, "torch", "note", "old weak note", "n1", 1, old - DAY)
    insert(crew_home, "torch", "note", "old strong note", "n2", 3, old - DAY)
    insert(crew_home, "torch", "note", "newer weak note", "n3", 1, now - 100)
    insert(crew_home, "echo", "note", "echo dup 1", "a", 1, now - 50)  # another Nova's: untouched
    insert(crew_home, "echo", "note", "echo dup 2", "a", 1, now - 50)
    insert(crew_home, None, "note", "shared 1", "s", 1, old)  # shared: untouched
    insert(crew_home, None, "note", "shared 2", "s", 1, old)
    config = OFF._replace(memory=MemoryConfig(max_per_nova=5, episode_ttl_s=30 * DAY))
    done = write(crew_home, lambda conn: memory.consolidate(conn, config, "torch", now))
    assert done == memory.Consolidated(merged=3, strengthened=2, aged_out=1, capped=2)
    after = states(crew_home)
    assert after["dup a1"] == (4, None)  # the oldest keeps the key with the summed strength
    assert after["dup a2"] == (2, f"merged into memory {keeper}")
    assert after["dup a3"] == (1, f"merged into memory {keeper}")
    assert after["dup b1"] == (2, None) and after["dup b2"][1] == f"merged into memory {other}"
    assert after["old episode"][1] == ("an episode nothing strengthened in 30 days "
                                       "([memory] episode_ttl_s)")
    assert after["old strong episode"] == (2, None) and after["fresh episode"] == (1, None)
    # seven were left live: the cap of 5 forgets the weakest, the least recent first
    for text in ("old weak note", "newer weak note"):
        assert after[text][1].startswith("more than 5 live memories of one writer ([memory] "
                                         "max_per_nova)")
    assert after["old strong note"] == (3, None)
    assert live_texts(crew_home, include_shared=False) == [
        "dup a1", "old strong note", "dup b1", "old strong episode", "fresh episode"]
    assert {after[t][1] for t in ("echo dup 1", "echo dup 2", "shared 1", "shared 2")} == {None}
    again = write(crew_home, lambda conn: memory.consolidate(conn, config, "torch", now))
    assert again == memory.Consolidated(0, 0, 0, 0)


def test_the_cap_holds_as_memories_are_added(crew_home):
    config = OFF._replace(memory=MemoryConfig(max_per_nova=3))
    for n in range(5):
        add(crew_home, f"note {n}", config=config, now=T0 + n)
    assert live_texts(crew_home) == ["note 4", "note 3", "note 2"]
    add(crew_home, "note 4", config=config, now=T0 + 11, writer="echo")  # strength 2: it stays
    add(crew_home, "note 5", config=config, now=T0 + 12)
    add(crew_home, "note 6", config=config, now=T0 + 13)
    assert live_texts(crew_home) == ["note 4", "note 6", "note 5"]
    why = sql(crew_home, "SELECT forgotten_why FROM memories WHERE text = 'note 1'")[0][0]
    assert why.startswith("more than 3 live memories of one writer ([memory] max_per_nova)")
    for n in range(5):  # shared memories have a cap of their own
        add(crew_home, f"shared {n}", nova=None, config=config, now=T0 + n)
    assert len(live_texts(crew_home, include_shared=False)) == 3
    assert len(sql(crew_home, "SELECT id FROM memories WHERE nova_id IS NULL"
                         " AND forgotten_at IS NULL")) == 3
    # each writer's own: one writer's flood forgets only what it wrote
    for n in range(5):
        add(crew_home, f"echo's shared {n}", nova=None, config=config, now=T0 + 20 + n,
            writer="echo")
        add(crew_home, f"echo for torch {n}", config=config, now=T0 + 20 + n, writer="echo")
    assert sql(crew_home, "SELECT writer, nova_id IS NULL, count(*) FROM memories WHERE"
                     " forgotten_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2") == [
        ("echo", 0, 3), ("echo", 1, 3), ("torch", 0, 3), ("torch", 1, 3)]


# --- shared memories and the outbox -------------------------------------------------------

def test_a_shared_memory_puts_its_entry_in_the_outbox_in_the_same_transaction(crew_home):
    mirrored = Config(redis_url="redis://127.0.0.1:9/0")
    add(crew_home, "a Nova's own", config=mirrored)
    assert sql(crew_home, "SELECT count(*) FROM outbox") == [(0,)]
    shared = add(crew_home, "the build needs node 20", nova=None, author="torch", config=mirrored)
    again = add(crew_home, "The build needs Node 20", nova=None, author="echo", config=mirrored,
                writer="echo")
    add(crew_home, "the build needs NODE 20", nova=None, author="echo", config=mirrored,
        writer="echo")  # nothing changed: nothing to mirror
    rows = sql(crew_home, "SELECT stream, event_id, type, nova, data FROM outbox ORDER BY id")
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("nova.coordination.messages", "memory", "torch"),
        ("nova.coordination.messages", "memory", "echo")]
    assert [r[1] for r in rows] == [shared.event_id, again.event_id]
    first, second = (json.loads(r[4]) for r in rows)
    assert first == {"memory": shared.memory.id, "kind": "note",
                     "text": "the build needs node 20", "key": shared.memory.key,
                     "source": None, "writer": "torch", "strength": 1, "created": True}
    assert (second["created"], second["strength"]) == (False, 2)
    assert sql(crew_home, "SELECT event_id FROM memories") == [(None,), (shared.event_id,)]
    with pytest.raises(NovaNotFound):  # nothing half written
        add(crew_home, "by nobody", nova=None, author="ghost", config=mirrored)
    assert sql(crew_home, "SELECT count(*) FROM outbox") == [(2,)]
    add(crew_home, "mirror off", nova=None, author="torch", config=OFF)
    assert sql(crew_home, "SELECT count(*) FROM outbox") == [(2,)]


# --- episodes -----------------------------------------------------------------------------

def assistant_line(text: str) -> str:
    return json.dumps({"type": "assistant", "message": {
        "role": "assistant", "content": [{"type": "text", "text": text}]}})


def episodes(home) -> list[tuple[str, str, str]]:
    return sql(home, "SELECT n.name, m.source, m.text FROM memories m JOIN novas n"
                     " ON n.id = m.nova_id WHERE m.kind = 'episode' ORDER BY m.id")


def test_a_supervised_session_leaves_an_episode_of_its_item(crew_home, tmp_path):
    config = config_with('redis_url = "off"')
    with work_queue.open_queue(crew_home, config) as q:
        item = q.add("Fix the flaky login test\n\nIt fails one run in ten.", now=T0 - 60).id
    lines = [assistant_line("Looking at it."),
             assistant_line("Fixed:   the test waited\non a real clock."),
             json.dumps({"type": "result", "subtype": "success", "is_error": False})]
    command = agent_script(tmp_path, f"print({chr(10).join(lines)!r})")
    supervisor(crew_home, config, command, FakeClock(), once=True).run()
    assert episodes(crew_home) == [("torch", f"item:{item}",
                               f"Finished work item {item}: Fix the flaky login test It fails "
                               "one run in ten. | Last message: Fixed: the test waited on a "
                               "real clock.")]


def test_a_failed_session_leaves_no_episode(crew_home, tmp_path):
    config = config_with('redis_url = "off"')
    with work_queue.open_queue(crew_home, config) as q:
        q.add("doomed", now=T0 - 60)
    said = assistant_line("I could not.")
    command = agent_script(tmp_path, f"import sys; print({said!r}); sys.exit(3)")
    supervisor(crew_home, config, command, FakeClock(), once=True).run()
    assert episodes(crew_home) == []


def test_an_item_the_agent_finished_itself_leaves_its_episode_too(crew_home, tmp_path):
    # a real clock: the agent's `torchsm queue done` stamps the time it really is
    config = config_with('redis_url = "off"')
    with work_queue.open_queue(crew_home, config) as q:
        item = q.add("write the changelog").id
    said = assistant_line("Changelog written.")
    command = agent_script(tmp_path, f"""
        import os, subprocess, sys
        subprocess.run([sys.executable, "-m", "torchsm", "queue", "done",
                        os.environ["TORCHSM_ITEM"]], check=True, stdout=subprocess.DEVNULL)
        print({said!r})
    """)
    supervisor(crew_home, config, command, FakeClock(time.time() - 1), once=True).run()
    assert episodes(crew_home) == [("torch", f"item:{item}", f"Finished work item {item}: write "
                               "the changelog | Last message: Changelog written.")]


def test_an_episode_is_left_once_per_item_and_odd_text_is_cleaned(crew_home):
    config = config_with('redis_url = "off"')
    with work_queue.open_queue(crew_home, config) as q:
        item = q.add("a task " + "t" * 1000, now=T0)
    for message in ("bad \ud800 escape" + " m" * 1000, "another ending"):
        write(crew_home, lambda conn: memory.remember_episode(conn, config, "torch", item, message,
                                                         T0 + 1))
    [(_, source, text)] = episodes(crew_home)
    assert source == f"item:{item.id}" and "\ufffd" in text
    task, said = text.split(" | Last message: ")
    assert len(task) == len(f"Finished work item {item.id}: ") + memory.EPISODE_TASK_CHARS
    assert memory.EPISODE_MESSAGE_CHARS - 2 <= len(said) <= memory.EPISODE_MESSAGE_CHARS
    assert said.endswith("m\u2026")


@pytest.fixture
def hooked(cli: Cli) -> Cli:
    cli("nova", "add", "torch")
    return cli


def test_a_stop_hook_continuation_leaves_the_episode_of_the_item_before(hooked):
    first = hooked("queue", "add", "task one", "--json").json()["id"]
    second = hooked("queue", "add", "task two", "--json").json()["id"]
    third = hooked("queue", "add", "task three", "--json").json()["id"]
    opened = json.loads(hook(hooked, "stop", payload("Stop.json")).out)
    assert f"work item {first}" in opened["reason"]
    assert 'To remember something for later sessions: `torchsm memory add torch "..."`.' \
        in opened["reason"]
    assert episodes(Home(hooked.home)) == []  # no item before the first
    hook(hooked, "stop", payload("Stop.json", stop_hook_active=True,
                                 last_assistant_message="Task one is done:\nall green."))
    assert episodes(Home(hooked.home)) == [
        ("torch", f"item:{first}", f"Finished work item {first}: task one | Last message: "
                                   "Task one is done: all green.")]
    hooked("queue", "fail", str(second), "--error", "gave up")  # the agent failed it itself
    hook(hooked, "stop", payload("Stop.json", stop_hook_active=True))
    assert [e[1] for e in episodes(Home(hooked.home))] == [f"item:{first}"]
    hook(hooked, "stop", payload("Stop.json", stop_hook_active=True,
                                 last_assistant_message=["not", "a string"]))
    assert episodes(Home(hooked.home))[-1] == (
        "torch", f"item:{third}", f"Finished work item {third}: task three")

