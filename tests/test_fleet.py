"""Issue 22 point 2, the fleet: `up` starts a keeper in the background that keeps one
`torchsm run` per Nova running, restarts one that dies alone with backoff, and `down`,
`restart`, `ps` and `status` see and steer it. Real processes on a real home."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import Cli, torchsm_executable, wait_for
from torchsm.supervisor import fleet

AGENT = ["--", "sleep", "1000"]  # never started: no work is queued, the supervisors idle


def ps(cli: Cli) -> dict[str, dict]:
    return {row["nova"]: row for row in cli("ps", "--json").json()}


def processes_of(home: Path) -> list[str]:
    """The command lines of every live process naming this home in its arguments or its
    TORCHSM_HOME (the keeper, the supervisors and what they started), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        named = str(home) in cmdline or f"TORCHSM_HOME={home}".encode() in environ
        if named and state != "Z":
            found.append(cmdline)
    return found


def keeper(cli: Cli) -> list[str]:
    return [line for line in processes_of(cli.home) if line.split()[2:3] == ["up"]]


def assert_sigterm_stops_the_fleet(keeper_process: subprocess.Popen, cli: Cli,
                                   supervisors: int = 3) -> None:
    """SIGTERM to a foreground keeper (as `systemctl stop` sends it): it ends cleanly and
    so does each supervisor, leaving no process of the home behind."""
    try:
        keeper_process.send_signal(signal.SIGTERM)
        out, err = keeper_process.communicate(timeout=60)
    finally:
        keeper_process.kill()
    assert keeper_process.returncode == 0, err
    assert out.count("supervisor ends after 0 sessions: stopped by SIGTERM") == supervisors
    assert processes_of(cli.home) == []
    assert all(row["pid"] is None for row in ps(cli).values())


@contextlib.contextmanager
def fleet_up(cli: Cli, *args: str):
    """`torchsm up ARGS`, and `down` whatever happens."""
    try:
        yield cli("up", *args)
    finally:
        cli("down", check=False)


def test_up_returns_and_keeps_a_supervisor_per_nova_that_ps_shows(crew: Cli):
    started = time.monotonic()
    with fleet_up(crew, *AGENT) as result:
        assert time.monotonic() - started < 20  # it returns: the keeper is in the background
        rows = ps(crew)
        assert sorted(rows) == ["echo", "helix", "torch"]
        for name, row in rows.items():
            assert (row["by"], row["restarts"], row["state"]) == ("fleet", 0, "working")
            assert f"{name}: supervisor pid {row['pid']}" in result.out
            assert row["uptime_s"] is not None and row["why"].startswith("idle:")
        assert len(keeper(crew)) == 1
        assert crew("ps").out.split()[:4] == ["NOVA", "PID", "BY", "UPTIME"]


def test_a_killed_supervisor_is_restarted_alone_after_a_backoff(crew: Cli):
    with fleet_up(crew, *AGENT):
        before = ps(crew)
        os.kill(before["torch"]["pid"], signal.SIGKILL)
        after = wait_for(lambda: (rows := ps(crew))["torch"]["pid"] not in (
            None, before["torch"]["pid"]) and rows, timeout=30)
        assert after["torch"]["restarts"] == 1 and after["torch"]["by"] == "fleet"
        for name in ("echo", "helix"):  # the others were not touched
            assert (after[name]["pid"], after[name]["restarts"]) == (before[name]["pid"], 0)
        log = (crew.home / "log" / "fleet.log").read_text()
        assert "torch: supervising torch" in log


def test_restart_delay_doubles_with_jitter_up_to_its_cap():
    rng = random.Random(7)
    for streak in range(12):
        delay = fleet.restart_delay(streak, rng)
        ceiling = min(fleet.RESTART_CAP_S, fleet.RESTART_BASE_S * 2 ** streak)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(fleet.restart_delay(3, rng), 6) for _ in range(20)}) > 1  # jittered


def test_down_stops_everything_and_up_again_uses_the_kept_commands(crew: Cli):
    for name in ("torch", "echo", "helix"):
        crew("nova", "set", name, "--command", "sleep 999")
    with fleet_up(crew):  # no command given: each Nova's own
        assert all(row["by"] == "fleet" for row in ps(crew).values())
    assert crew("down").out == "no fleet runs\n"
    assert processes_of(crew.home) == []  # the keeper and every supervisor are gone
    with fleet_up(crew):
        plans = [row for row in crew("status", "--json").json()]
        assert [p["plan"]["command"] for p in plans] == [["sleep", "999"]] * 3
        out = crew("down").out
    assert out == "echo: stopped\nhelix: stopped\ntorch: stopped\nfleet keeper stopped\n"
    assert processes_of(crew.home) == []


def test_a_novas_own_command_wins_over_the_one_given_to_up(crew: Cli):
    crew("nova", "set", "echo", "--command", "sleep 999")
    with fleet_up(crew, "torch", "echo", *AGENT):
        plans = {p["nova"]: p["plan"] for p in crew("status", "--json").json()}
        assert plans["echo"]["command"] == ["sleep", "999"]
        assert plans["torch"]["command"] == ["sleep", "1000"]
        assert plans["helix"] is None  # not named: not started


def test_up_without_a_command_names_the_novas_that_have_none(crew: Cli):
    crew("nova", "set", "echo", "--command", "sleep 999")
    result = crew.fails("up")
    assert result.err == ("torchsm: error: no agent command for helix, torch: keep one "
                          "(`torchsm nova set NAME --command '...'`) or give one (`torchsm "
                          "up -- COMMAND`)\n")
    assert processes_of(crew.home) == []


@pytest.mark.parametrize("args, message, code", [
    (["up", "ghost", "--", "true"], "torchsm: error: no Nova named 'ghost'\n", 1),
    (["up", "--", "no-such-agent-xyz"], "torchsm: error: command not found: "
                                         "no-such-agent-xyz\n", 1),
    (["restart", "torch"], "torchsm: error: torch is not in the fleet: `torchsm up torch` "
                           "starts it\n", 1),
    (["down", "torch"], "torchsm: error: torch is not in the fleet: `torchsm up torch` "
                        "starts it\n", 1),
])
def test_errors_are_one_line(torch_cli: Cli, args, message, code):
    assert torch_cli.fails(*args, code=code).err == message


def test_an_empty_command_after_the_dashes_is_a_usage_error(torch_cli: Cli):
    assert "no agent command after --" in torch_cli.fails("up", "--", code=2).err


def test_up_twice_keeps_one_keeper_and_up_name_adds_a_nova(crew: Cli):
    with fleet_up(crew, "torch", *AGENT):
        first = keeper(crew)
        assert crew("up", "torch", *AGENT).out.startswith("torch: supervisor pid")
        crew("up", "echo", *AGENT)
        assert keeper(crew) == first
        rows = ps(crew)
        assert (rows["torch"]["by"], rows["echo"]["by"], rows["helix"]["by"]) == (
            "fleet", "fleet", None)
        crew("down", "echo")
        rows = ps(crew)
        assert (rows["torch"]["by"], rows["echo"]["pid"]) == ("fleet", None)
        assert keeper(crew) == first


def test_restart_stops_one_supervisor_cleanly_and_starts_it_again(crew: Cli):
    with fleet_up(crew, *AGENT):
        before = ps(crew)
        out = crew("restart", "echo").out
        after = ps(crew)
        assert after["echo"]["pid"] not in (None, before["echo"]["pid"])
        assert out == f"echo: supervisor pid {after['echo']['pid']} (was {before['echo']['pid']})\n"
        assert after["echo"]["restarts"] == 0  # asked for, not a crash
        assert after["torch"]["pid"] == before["torch"]["pid"]
        assert "echo: supervisor ends after 0 sessions: stopped by SIGTERM" in (
            crew.home / "log" / "fleet.log").read_text()


def test_a_supervisor_started_by_hand_is_left_alone(torch_cli: Cli):
    by_hand = subprocess.Popen([*torchsm_executable(), "run", "torch", "--", "true"],
                               env=torch_cli.env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ps(torch_cli)["torch"]["pid"], timeout=30)
        out = torch_cli("up", *AGENT).out
        assert out == f"torch: supervised outside the fleet (pid {by_hand.pid}): left alone\n"
        row = ps(torch_cli)["torch"]
        assert (row["pid"], row["by"], row["restarts"]) == (by_hand.pid, "outside", None)
    finally:
        by_hand.send_signal(signal.SIGTERM)
        by_hand.wait(30)
        torch_cli("down", check=False)


def test_foreground_stops_its_supervisors_and_ends_cleanly_on_sigterm(crew: Cli):
    keeper_process = subprocess.Popen([*torchsm_executable(), "up", "--foreground", *AGENT],
                                      env=crew.env(), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
    try:
        wait_for(lambda: all(row["by"] == "fleet" for row in ps(crew).values()), timeout=30)
    except BaseException:
        keeper_process.kill()
        raise
    assert_sigterm_stops_the_fleet(keeper_process, crew)


def test_status_says_when_a_supervisor_died_without_ending(torch_cli: Cli):
    from torchsm.config import Home
    from torchsm.storage import run_files

    gone = subprocess.Popen(["true"])
    gone.wait()
    run_files.write_plan(Home(torch_cli.home), "torch", {"nova": "torch", "pid": gone.pid,
                                                        "state": "waiting"})
    why = torch_cli("status", "torch", "--json").json()[0]["why"]
    assert why == (f"working; its supervisor (pid {gone.pid}) is gone: it died without "
                   "ending cleanly")
