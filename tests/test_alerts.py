"""Issue 16 point 3: alerts are raised once per condition, stay open while it holds, resolve
when it clears; they reach the coordination stream and `[alerts] command`, whose failures
and hangs are recorded, never fatal, and tried again."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import Cli, write_config
from torchsm import novas
from torchsm.alerts import account_alert
from torchsm.alerts import conditions
from torchsm.config import Home, load_config
from torchsm.storage import run_files, store

T0 = time.time()  # the plan files' mtimes are real: conditions are evaluated at real times
HOUR, DAY = 3600.0, 86400.0


def execute(home: Home, sql: str, *args) -> None:
    conn = sqlite3.connect(home.db_path)
    try:
        with conn:
            conn.execute(sql, args)
    finally:
        conn.close()


def nova_id(home: Home, name: str) -> int:
    conn = sqlite3.connect(home.db_path)
    try:
        return conn.execute("SELECT id FROM novas WHERE name = ?", (name,)).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def echo(home: Home, config) -> str:
    novas.add(home, config, "echo", now=T0 - DAY)
    return "echo"


def bang(home: Home, at: float) -> None:
    execute(home, "INSERT INTO hook_runs (nova_id, event, at, outcome) VALUES (?, 'stop', ?,"
            " 'bang')", nova_id(home, "echo"), at)


def meditation(home: Home, at: float) -> None:
    execute(home, "INSERT INTO history (nova_id, from_state, to_state, event, at, forced)"
            " VALUES (?, 'working', 'meditating', 'meditate', ?, 0)", nova_id(home, "echo"), at)


def dead_item(home: Home, at: float) -> None:
    execute(home, "INSERT INTO work_items (text, priority, priority_rank, status, attempts,"
            " max_attempts, created_at, updated_at) VALUES ('x', 'low', 3, 'dead', 3, 3, ?, ?)",
            at, at)


def refused_session(home: Home, at: float) -> None:
    execute(home, "INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt, outcome)"
            " VALUES (?, ?, ?, 'item', 'p', 'rate_limited')", nova_id(home, "echo"), at, at)


def limit_hold(home: Home, at: float) -> None:
    execute(home, "UPDATE novas SET state = 'cooling', since = ?, until = ?,"
            " limit_hold = 'five_hour at 100%' WHERE name = 'echo'", at, at + HOUR)


def release_hold(home: Home) -> None:
    execute(home, "UPDATE novas SET state = 'working', limit_hold = NULL WHERE name = 'echo'")


def dead_supervisor(home: Home, at: float) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    run_files.write_plan(home, "echo", {"nova": "echo", "pid": gone.pid, "state": "waiting"})


def remove_plan(home: Home) -> None:
    run_files.remove_plan(home, "echo")


def finish_dead(home: Home) -> None:
    execute(home, "DELETE FROM work_items WHERE status = 'dead'")


# condition key, what makes it hold at `at`, how it clears: a later `now` or an action
CONDITIONS = [
    ("bangs:echo", lambda h, at: [bang(h, at) for _ in range(3)], HOUR + 1),
    ("meditations:echo", lambda h, at: [meditation(h, at) for _ in range(2)], DAY + 1),
    ("dead_items", dead_item, finish_dead),
    ("refused:echo", refused_session, HOUR + 1),
    ("limit_hold:echo", limit_hold, release_hold),
    ("heartbeat:echo", dead_supervisor, remove_plan),
]


@pytest.mark.parametrize("key, make, clear", CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_each_condition_is_raised_once_stays_open_and_resolves(home, config, echo, key, make,
                                                               clear):
    make(home, T0)
    first = conditions.evaluate(home, config, T0)
    assert [a.key for a in first.raised] == [key]
    again = conditions.evaluate(home, config, T0 + 1)
    assert again.raised == [] and again.resolved == []
    assert [a.key for a in conditions.list_alerts(home, config)] == [key]

    if callable(clear):
        clear(home)
        later = T0 + 2
    else:
        later = T0 + clear
    done = conditions.evaluate(home, config, later)
    assert [a.key for a in done.resolved] == [key]
    assert conditions.list_alerts(home, config) == []
    everything = conditions.list_alerts(home, config, include_resolved=True)
    assert [(a.key, a.resolved_at) for a in everything] == [(key, later)]


def test_below_the_threshold_nothing_is_raised(home, config, echo):
    bang(home, T0)
    bang(home, T0)  # 2 of 3
    meditation(home, T0)  # 1 of 2
    assert conditions.evaluate(home, config, T0).raised == []


def test_a_threshold_of_zero_turns_its_condition_off(home, echo):
    write_config(home, "[alerts]\ndead_items = 0\n")
    dead_item(home, T0)
    assert conditions.evaluate(home, load_config(home), T0).raised == []


def test_a_supervisor_that_stopped_touching_its_plan_is_reported(home, config, echo):
    run_files.write_plan(home, "echo", {"nova": "echo", "pid": os.getpid(), "state": "waiting"})
    assert conditions.evaluate(home, config, time.time()).raised == []  # fresh: alive
    later = time.time() + config.alerts.heartbeat_s + 60
    raised = conditions.evaluate(home, config, later).raised
    assert [a.key for a in raised] == ["heartbeat:echo"]
    assert "has not touched its plan" in raised[0].message
    run_files.touch_plan(home, "echo", later)
    assert [a.key for a in conditions.evaluate(home, config, later).resolved] == ["heartbeat:echo"]


def test_an_account_alert_resolves_when_the_nova_leaves_meditation(home, config, echo):
    with store.open_store(home) as db:
        for _ in range(2):  # the hook and the supervisor report the same failure
            db.write(lambda conn: account_alert.raise_for(conn, nova="echo", at=T0,
                                                   kind="billing_error", message="no credit"))
    novas.meditate_for_a_person(home, config, "echo", reason="billing_error", now=T0)
    first = conditions.evaluate(home, config, T0 + 1)
    assert [(a.key, a.kind) for a in first.raised] == [("account:echo", "billing_error")]
    assert first.raised[0].event_id is not None
    assert conditions.evaluate(home, config, T0 + 2).resolved == []  # still meditating
    novas.transition(home, config, "echo", "work", force=True, now=T0 + 3)
    assert [a.key for a in conditions.evaluate(home, config, T0 + 4).resolved] == ["account:echo"]


def test_raised_and_resolved_reach_the_coordination_stream(home, echo, redis_db):
    write_config(home, f'redis_url = "{redis_db.url}"\n')
    config = load_config(home)
    dead_item(home, T0)
    raised = conditions.evaluate(home, config, T0).raised[0]
    finish_dead(home)
    conditions.evaluate(home, config, T0 + 1)
    entries = redis_db.client().xrange("nova.coordination.messages")
    shown = [(f[b"type"].decode(), json.loads(f[b"data"])) for _, f in entries]
    assert [(t, d["key"], d["status"]) for t, d in shown] == [
        ("alert.raised", "dead_items", "open"), ("alert.resolved", "dead_items", "resolved")]
    assert entries[0][1][b"event_id"].decode() == raised.event_id


# --- delivery through `[alerts] command`, by the real CLI ----------------------------------

def alerts_cli(cli: Cli, *args: str):
    return cli("alerts", *args, check=False)


def test_the_command_gets_the_alert_as_json_on_stdin(home, cli, echo, tmp_path):
    got = tmp_path / "got.json"
    write_config(home, f"[alerts]\ncommand = \"cat > '{got}'\"\n")
    dead_item(home, T0)
    result = alerts_cli(cli, "--json")
    assert (result.code, result.err) == (0, "")
    sent = json.loads(got.read_text())
    assert (sent["key"], sent["kind"], sent["status"]) == ("dead_items", "dead_items", "open")
    assert sent["details"] == {"count": 1, "threshold": 1}
    listed = result.json()
    assert [(a["key"], a["delivery"], a["attempts"]) for a in listed] == [("dead_items", "sent", 1)]
    got.unlink()
    assert alerts_cli(cli).code == 0
    assert not got.exists()  # raised once: sent once


def test_a_failing_command_is_one_line_never_fatal_and_tried_again(home, cli, echo):
    write_config(home, '[alerts]\ncommand = "echo webhook down >&2; exit 3"\n'
                       "command_attempts = 2\n")
    dead_item(home, T0)
    first = alerts_cli(cli, "--json")
    assert first.code == 0
    assert first.err == ("torchsm: warning: alert 1 (dead_items): [alerts] command exited 3:"
                         " webhook down; will try again\n")
    [alert] = first.json()
    assert (alert["delivery"], alert["attempts"], alert["last_error"]) == (
        "pending", 1, "exited 3: webhook down")
    second = alerts_cli(cli, "--json")
    assert second.code == 0
    assert second.err.endswith("; gave up after 2 attempts\n")
    assert [(a["delivery"], a["attempts"]) for a in second.json()] == [("failed", 2)]
    third = alerts_cli(cli)
    assert (third.code, third.err) == (0, "")  # given up: not run again
    assert "dead_items" in third.out and "failed (2 tries: exited 3" in third.out


def test_a_hanging_command_is_killed_with_its_group_and_recorded(home, cli, echo, tmp_path):
    pids = tmp_path / "pids"
    write_config(home, "[alerts]\ncommand_timeout_s = 0.5\n"
                       f"command = \"sleep 300 & echo $$ $! > '{pids}'; wait\"\n")
    dead_item(home, T0)
    result = alerts_cli(cli, "--json")
    assert result.code == 0
    assert result.err == ("torchsm: warning: alert 1 (dead_items): [alerts] command timed out"
                          " after 0.5 s (killed); will try again\n")
    assert [(a["delivery"], a["last_error"]) for a in result.json()] == [
        ("pending", "timed out after 0.5 s (killed)")]
    for pid in map(int, pids.read_text().split()):
        assert not running(pid)


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_that_cannot_start_is_recorded(home, cli, echo):
    write_config(home, '[alerts]\ncommand = "/nonexistent/notify"\n')
    dead_item(home, T0)
    result = alerts_cli(cli)
    assert result.code == 0
    assert result.err.startswith("torchsm: warning: alert 1 (dead_items): [alerts] command "
                                 "exited 127")
    assert result.err.count("\n") == 1


def test_alerts_lists_open_ones_and_all_with_resolved(home, cli, echo):
    dead_item(home, T0)
    assert "dead_items" in alerts_cli(cli).out
    finish_dead(home)
    assert alerts_cli(cli).out == "no open alerts\n"
    assert [a["status"] for a in alerts_cli(cli, "--all", "--json").json()] == ["resolved"]


@pytest.mark.parametrize("text, message", [
    ("[alerts]\nbangs_per_hour = -1\n", "'alerts.bangs_per_hour' must not be negative"),
    ("[alerts]\ncommand_timeout_s = 0\n", "'alerts.command_timeout_s' must be a positive"),
    ("[alerts]\ncommand = 3\n", "'alerts.command' must be a string"),
])
def test_bad_alert_config_is_refused_naming_the_key(home, cli, text, message):
    write_config(home, text)
    result = cli.fails("alerts")
    assert message in result.err


def test_a_waiting_supervisor_raises_and_delivers_alerts_itself(cli, tmp_path):
    # nobody runs `torchsm alerts`: the supervisor's own loop evaluates the conditions and
    # runs the command, and touches its plan (its heartbeat) while it waits
    import signal

    from helpers import FAST
    from test_run_cli import start, wait_for

    got, script = tmp_path / "delivered.json", tmp_path / "deliver.py"
    script.write_text(f"import sys\nopen({str(got)!r}, 'w').write(sys.stdin.read())\n")
    command = f"{sys.executable} {script}"
    write_config(Home(cli.home), FAST + "[alerts]\nevaluate_every_s = 0.2\n"
                 f"command = {json.dumps(command)}\n")
    cli("nova", "add", "torch")
    supervisor = start(cli, "torch", "--", "true")
    try:
        plan = Home(cli.home).path / "run" / "torch.json"
        wait_for(plan.exists)
        dead_item(Home(cli.home), time.time())
        delivered = json.loads(wait_for(lambda: got.exists() and got.read_text()))
        assert delivered["key"] == "dead_items"
        first = plan.stat().st_mtime
        wait_for(lambda: plan.stat().st_mtime > first, timeout=20)  # the heartbeat
    finally:
        supervisor.send_signal(signal.SIGINT)
        supervisor.communicate(timeout=20)
    assert supervisor.returncode == 0


def test_a_limit_hold_alert_resolves_when_the_hold_ends_with_no_supervisor_running(
        home, config, echo):
    """Issue 22 point 8: the supervisor was stopped while its Nova was held, so nobody
    moved the Nova back to `working` at the reset: the row still names the limit, but
    the hold has ended, and so has the alert."""
    limit_hold(home, T0)  # held until T0 + HOUR, and no supervisor runs
    assert [a.key for a in conditions.evaluate(home, config, T0).raised] == ["limit_hold:echo"]
    assert conditions.evaluate(home, config, T0 + HOUR - 1).resolved == []  # still held

    after = conditions.evaluate(home, config, T0 + HOUR + 1)
    assert [a.key for a in after.resolved] == ["limit_hold:echo"]
    assert conditions.list_alerts(home, config) == []
    assert conditions.evaluate(home, config, T0 + HOUR + 2).raised == []  # not raised again
