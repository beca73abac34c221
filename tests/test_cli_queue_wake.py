"""`torchsm queue ...` and `torchsm wake ...` through the real CLI in subprocesses:
output, exit codes and the exact stderr line of every error path."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers import write_config, loaded_modules


def error_line(result) -> str:
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1, result.err
    return result.err.rstrip("\n")


# Due times must not depend on how busy the test machine is.
STEADY = "[wake]\nload_defer_per_core = 0\n"


@pytest.fixture
def steady_torch(torch_cli, home):
    """torch_cli, with wake signals never deferred for load."""
    write_config(home, STEADY)
    return torch_cli


# --- queue -------------------------------------------------------------------------

def test_add_prints_the_id_and_claim_done_round_trip(steady_torch):
    assert steady_torch("queue", "add", "first").out == "1\n"
    assert steady_torch("queue", "add", "second", "--priority", "high").out == "2\n"
    claimed = steady_torch("queue", "claim", "--nova", "torch", "--json").json()
    assert (claimed["id"], claimed["status"], claimed["attempts"]) == (2, "claimed", 1)
    assert steady_torch("queue", "done", "2").out == "2: done\n"
    text = steady_torch("queue", "claim", "--nova", "torch").out
    assert text.startswith("1\tfirst\n")
    assert steady_torch("queue", "fail", "1", "--error", "no idea").out == "1: failed\n"
    listed = steady_torch("queue", "list", "--json").json()
    assert [(i["id"], i["status"], i["error"]) for i in listed] == [
        (2, "done", None), (1, "failed", "no idea")]
    assert steady_torch("queue", "list", "--status", "failed", "--json").json()[0]["id"] == 1


def test_add_for_a_nova_and_list_it(steady_torch):
    steady_torch("nova", "add", "echo")
    steady_torch("queue", "add", "for echo", "--nova", "echo")
    steady_torch("queue", "add", "for anyone")
    assert [i["text"] for i in steady_torch("queue", "list", "--nova", "echo", "--json").json()] \
        == ["for echo"]
    out = steady_torch("queue", "list").out.splitlines()
    assert out[0].split() == ["ID", "STATUS", "PRIORITY", "NOVA", "CLAIMED_BY", "TRIES",
                              "CREATED", "TEXT"]
    assert len(out) == 3


def test_claim_with_nothing_claimable_exits_1(steady_torch):
    result = steady_torch.fails("queue", "claim", "--nova", "torch")
    assert error_line(result) == "torchsm: error: nothing to claim for torch"
    assert result.out == ""


def test_claim_needs_a_nova(steady_torch):
    steady_torch.fails("queue", "claim", code=2)


@pytest.mark.parametrize("args,line", [
    (["queue", "done", "abc"], "invalid work item id 'abc': ids are positive integers"),
    (["queue", "fail", "0"], "invalid work item id '0': ids are positive integers"),
    (["queue", "done", "99"], "no work item 99"),
    (["queue", "add", "x", "--nova", "ghost"], "no Nova named 'ghost'"),
    (["queue", "claim", "--nova", "ghost"], "no Nova named 'ghost'"),
    (["queue", "list", "--nova", "ghost"], "no Nova named 'ghost'"),
    (["queue", "add", "x", "--nova", "Bad Name"],
     "invalid Nova name 'Bad Name': use [a-z0-9][a-z0-9_-]{0,31}"),
    (["queue", "add", "   "], "a work item needs some text"),
    (["wake", "ghost", "hello"], "no Nova named 'ghost'"),
    (["wake", "list", "ghost"], "no Nova named 'ghost'"),
    (["wake", "classify", "hi", "--nova", "ghost"], "no Nova named 'ghost'"),
    (["wake", "torch", "  "], "a wake signal needs a message"),
])
def test_error_paths(steady_torch, args, line):
    assert error_line(steady_torch.fails(*args)) == f"torchsm: error: {line}"


def test_finishing_twice_is_refused(steady_torch):
    steady_torch("queue", "add", "a")
    steady_torch("queue", "done", "1")
    assert error_line(steady_torch.fails("queue", "done", "1")) == \
        "torchsm: error: work item 1 is already done"
    assert error_line(steady_torch.fails("queue", "fail", "1")) == \
        "torchsm: error: work item 1 is already done"


def test_queue_commands_need_an_initialised_home(bare_cli):
    result = bare_cli.fails("queue", "list")
    assert error_line(result) == \
        f"torchsm: error: no torchsm home at {bare_cli.home}: run `torchsm init`"


def test_import_reports_counts_and_malformed_lines(steady_torch, tmp_path):
    path = tmp_path / "legacy.txt"
    path.write_text('Write the guide\nWORK_PROCESSED: Fix the typo\n\n'
                    '{"text": "Ship it", "priority": "high"}\n{"text": \n')
    result = steady_torch("queue", "import", str(path))
    assert result.out == f"{path}: 3 added, 0 already imported, 1 malformed, 1 blank\n"
    assert result.err.startswith(f"torchsm: warning: {path}:5: not valid JSON")
    again = steady_torch("queue", "import", str(path), "--json").json()
    assert (again["added"], again["duplicates"]) == (0, 3)
    assert again["malformed"][0]["line"] == 5
    texts = [i["text"] for i in steady_torch("queue", "list", "--json").json()]
    assert texts == ["Ship it", "Write the guide", "Fix the typo"]


def test_import_missing_or_corrupt_file_stores_nothing(steady_torch, tmp_path):
    missing = tmp_path / "nope.txt"
    assert error_line(steady_torch.fails("queue", "import", str(missing))) == \
        f"torchsm: error: cannot read {missing}: No such file or directory"
    corrupt = tmp_path / "queue.db"
    corrupt.write_bytes(b"SQLite format 3\x00\x10\x00")
    assert error_line(steady_torch.fails("queue", "import", str(corrupt))) == \
        f"torchsm: error: {corrupt} is not a text file (NUL byte on line 1)"
    assert steady_torch("queue", "list", "--json").json() == []


def test_a_locked_database_fails_cleanly_and_loses_nothing(steady_torch, home):
    write_config(home, STEADY + "[db]\nlock_timeout_s = 0.3\n")
    steady_torch("queue", "add", "already there")
    holder = sqlite3.connect(home.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        for args in (["queue", "add", "new"], ["queue", "claim", "--nova", "torch"],
                     ["queue", "done", "1"], ["wake", "torch", "the build failed"]):
            assert error_line(steady_torch.fails(*args)) == \
                "torchsm: error: database is locked by another process (gave up after 0.3s)"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    [item] = steady_torch("queue", "list", "--json").json()
    assert (item["text"], item["status"]) == ("already there", "pending")
    assert steady_torch("wake", "list", "--json").json() == []
    assert steady_torch("queue", "claim", "--nova", "torch", "--json").json()["id"] == 1


@pytest.mark.parametrize("args", [
    ["queue", "add", "x"], ["queue", "claim", "--nova", "torch"], ["queue", "done", "1"],
    ["wake", "torch", "hello"], ["wake", "classify", "hello"],
])
def test_hot_paths_do_not_import_sqlalchemy_alembic_or_redis(steady_torch, args):
    if args[1] in ("claim", "done"):
        steady_torch("queue", "add", "x")
    report = loaded_modules(steady_torch, *args)
    assert (report["code"], report["heavy"]) == (0, [])


# --- wake --------------------------------------------------------------------------

def test_wake_stores_and_lists_by_due_time(steady_torch):
    assert steady_torch("wake", "torch", "Suggestion: tidy the docs").out.startswith(
        "torch: wake #1 low: queued; no supervisor runs for torch")
    sent = steady_torch("wake", "torch", "Hotfix needed for the pricing bug", "--json").json()
    assert (sent["tier"], sent["woke"]) == ("high", None)
    steady_torch("nova", "add", "echo")
    steady_torch("wake", "echo", "Please add pagination", "--sender", "someone")
    listed = steady_torch("wake", "list", "--json").json()
    assert [(s["nova"], s["tier"]) for s in listed] == [
        ("torch", "high"), ("echo", "medium"), ("torch", "low")]
    assert [s["id"] for s in steady_torch("wake", "list", "echo", "--json").json()] == [3]
    table = steady_torch("wake", "list").out.splitlines()
    assert table[0].split() == ["ID", "NOVA", "TIER", "DUE", "SENDER", "MESSAGE"]


def test_a_critical_wake_moves_a_cooling_nova_to_working_as_a_forced_transition(steady_torch):
    steady_torch("transition", "torch", "cool", "--for", "600")
    out = steady_torch("wake", "torch", "Production database is down").out
    assert out.splitlines() == [out.splitlines()[0], "torch: cooling -> working (forced)"]
    assert "critical: queued; no supervisor runs for torch" in out
    last = steady_torch("history", "torch", "--json").json()[-1]
    assert (last["from"], last["to"], last["forced"]) == ("cooling", "working", True)
    assert last["reason"] == "critical wake #1: Production database is down"


def test_only_a_critical_wake_moves_a_meditating_nova(steady_torch):
    steady_torch("transition", "torch", "meditate")
    assert steady_torch("wake", "torch", "Hotfix needed in prod", "--json").json()["woke"] is None
    assert steady_torch("status", "torch", "--json").json()[0]["state"] == "meditating"
    woke = steady_torch("wake", "torch", "Security incident on web-2", "--json").json()["woke"]
    assert (woke["from"], woke["to"], woke["forced"]) == ("meditating", "working", True)


def test_a_critical_wake_leaves_a_dreaming_nova_alone(steady_torch):
    steady_torch("transition", "torch", "dream")
    assert steady_torch("wake", "torch", "OUTAGE: everything", "--json").json()["woke"] is None
    assert steady_torch("status", "torch", "--json").json()[0]["state"] == "dreaming"


def test_wake_repetition_uses_the_novas_recent_signals(steady_torch):
    first = steady_torch("wake", "torch", "Disk usage at 91% on db-3", "--json").json()
    assert first["tier"] == "medium"
    preview = steady_torch("wake", "classify", "Disk usage at 95% on db-3", "--nova", "torch",
                    "--json").json()
    assert preview["tier"] == "high"
    second = steady_torch("wake", "torch", "Disk usage at 95% on db-3", "--json").json()
    assert second["tier"] == "high"
    # classify without --nova looks at no history
    assert steady_torch("wake", "classify", "Disk usage at 95% on db-3", "--json").json()["tier"] \
        == "medium"


def test_wake_classify_explain_and_sender_weights(steady_torch, home):
    write_config(home, STEADY + '[wake.senders]\npagerduty = 1\n\n[wake.rules.critical]\n'
                                'pager = "\\\\bpage me\\\\b"\n')
    out = steady_torch("wake", "classify", "Production issue: backlog", "--sender", "pagerduty",
                "--explain").out.splitlines()
    assert out[0].startswith("critical, due now (")
    assert out[1].split()[:3] == ["content", "production-issue", "high"]
    assert out[2].split()[:3] == ["sender", "pagerduty", "+1"]
    result = steady_torch("wake", "classify", "please page me", "--json").json()
    assert result["tier"] == "critical" and result["rules"][0]["rule"] == "pager"
    assert steady_torch("wake", "classify", "hello").out.startswith("medium, due in 300s (")


def test_wake_a_nova_named_like_a_subcommand(steady_torch):
    steady_torch("nova", "add", "list")
    assert steady_torch("wake", "--", "list", "hello").out.startswith("list: wake #1 medium")
    assert steady_torch("wake", "--json", "list").json()[0]["nova"] == "list"


def test_wake_options_before_the_name(steady_torch):
    assert steady_torch("wake", "--json", "torch", "hello").json()["nova"] == "torch"
    assert steady_torch("wake", "--home", str(steady_torch.home), "torch", "hi").code == 0


def test_wake_usage_errors_exit_2(steady_torch):
    steady_torch.fails("wake", code=2)
    steady_torch.fails("wake", "torch", code=2)
    assert "Usage: torchsm wake [OPTIONS] NAME MESSAGE | COMMAND [ARGS]..." in \
        steady_torch("wake", "--help").out


def test_bad_wake_config_is_one_error_line(steady_torch, home):
    write_config(home, '[wake.rules.critical]\nbroken = "("\n')
    line = error_line(steady_torch.fails("wake", "classify", "hi"))
    assert line.startswith("torchsm: error: torchsm.toml: 'wake.rules.critical.broken' "
                           "is not a valid regex")


def test_wake_signals_are_mirrored(cli, redis_db):
    cli("nova", "add", "torch")
    cli("wake", "torch", "the build is failing on main", "--sender", "ci",
        TORCHSM_REDIS_URL=redis_db.url)
    [(_, fields)] = redis_db.client().xrange("nova.coordination.messages")
    assert fields[b"type"] == b"wake" and fields[b"nova"] == b"torch"
    data = json.loads(fields[b"data"])
    assert data["message"] == "the build is failing on main" and data["sender"] == "ci"
    assert data["tier"] == "critical"


def test_wake_signals_queue_when_the_server_is_away(cli, refused_url):
    cli("nova", "add", "torch")
    cli("wake", "torch", "please tidy the docs", TORCHSM_REDIS_URL=refused_url)
    queued = (cli.home / "queue" / "nova.coordination.messages.jsonl").read_text()
    assert '"type": "wake"' in queued or '"type":"wake"' in queued
