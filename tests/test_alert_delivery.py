"""Issue 20, finding 4: `[alerts] command`'s output is read bounded, so endless stderr
keeps memory flat; an interrupted delivery leaves nothing behind. Real commands, real
process groups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from helpers import Cli, torchsm_executable, write_config
from supervisor_support import agent_script
from test_alerts import dead_item, running
from test_run_cli import FAST, plan, query, start, wait_for
from torchsm.config import Home

NEVER_RETURNS = "sleep 1000 & echo $$ $! > '{pids}'; wait"


def setup_alert_command(cli: Cli, command: str, extra: str = "") -> None:
    """FAST supervisor settings, alerts evaluated every 0.2 s, `command` for delivery, the
    Nova `torch`, and a condition that holds (a dead item): an alert opens at once."""
    write_config(Home(cli.home), FAST + "[alerts]\nevaluate_every_s = 0.2\n"
                 f"command = {json.dumps(command)}\n{extra}")
    cli("nova", "add", "torch")
    dead_item(Home(cli.home), time.time())


def delivery_pids(pids_file) -> list[int]:
    return [int(p) for p in wait_for(lambda: pids_file.exists() and pids_file.read_text()
                                     .split())]


def alert_row(cli: Cli) -> tuple:
    [row] = query(cli, "SELECT delivery, attempts, last_error FROM alerts")
    return row


def stop_within(run: subprocess.Popen, sig: int, bound_s: float) -> tuple[float, str]:
    """Send `sig`; the seconds until the supervisor exited (at most `bound_s`), and its
    stderr."""
    started = time.monotonic()
    run.send_signal(sig)
    try:
        _, err = run.communicate(timeout=bound_s)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        raise AssertionError(f"the supervisor took more than {bound_s} s to stop") from None
    return time.monotonic() - started, err


def query_write(cli: Cli, sql: str, *params) -> None:
    import sqlite3

    conn = sqlite3.connect(cli.home / "torchsm.db")
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


# --- `torchsm alerts` ------------------------------------------------------------------------

def test_endless_stderr_keeps_memory_flat(cli, tmp_path):
    setup_alert_command(cli, "yes >&2", "command_timeout_s = 3\n")
    proc = subprocess.Popen([*torchsm_executable(), "alerts"], env=cli.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "err").open("w"))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    assert usage.ru_maxrss < 100 * 1024, f"max RSS {usage.ru_maxrss // 1024} MB"  # KB
    assert (tmp_path / "err").read_text() == (
        "torchsm: warning: alert 1 (dead_items): [alerts] command timed out after 3 s "
        "(killed); will try again\n")


def test_the_last_line_of_long_stderr_is_kept(cli):
    setup_alert_command(cli, "head -c 3000000 /dev/zero | tr '\\0' x >&2; echo >&2; "
                             "echo 'webhook said 502' >&2; exit 3")
    result = cli("alerts", check=False)
    assert result.code == 0
    assert result.err == ("torchsm: warning: alert 1 (dead_items): [alerts] command exited 3:"
                          " webhook said 502; will try again\n")


def test_ctrl_c_on_alerts_leaves_no_command_behind(cli, tmp_path):
    pids = tmp_path / "pids"
    setup_alert_command(cli, NEVER_RETURNS.format(pids=pids), "command_timeout_s = 600\n")
    proc = subprocess.Popen([*torchsm_executable(), "alerts"], env=cli.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pid_list = delivery_pids(pids)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and err.endswith("torchsm: error: aborted\n")  # as any Ctrl-C
    assert not any(running(p) for p in pid_list)
    assert alert_row(cli) == ("pending", 1, "cut short: interrupted")
