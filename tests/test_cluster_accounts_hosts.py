"""Issue 23: two hosts (two homes, each with its own `torchsm run` supervisors) share
account `work` through one real redis-server.

- A limit heard on host A holds host B's Nova within 2 s, through B's own supervisor (its
  sync), and B starts nothing meanwhile.
- Cut off: with the server gone, past `lease_s` B starts no new session of the shared
  account, says why, and keeps the session it runs; with the server back it goes on.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from helpers import Cli, torchsm_executable, wait_for
from torchsm import novas
from torchsm.config import Home, load_config
from torchsm.storage import database, store
from torchsm.supervisor import admission
from torchsm.usage import accounts, limits

AGENT = """\
echo "start $TORCHSM_NOVA $(date +%s.%N)" >> {log}
case "$TORCHSM_PROMPT" in *long*) sleep 60 ;; *) sleep 0.1 ;; esac
echo "end $TORCHSM_NOVA $(date +%s.%N)" >> {log}
"""


def host_home(folder: Path, host: str, url: str, *names: str, lease_s: float = 30,
              sync_s: float = 0.5) -> Cli:
    home = Home(folder)
    database.initialise(home)
    (folder / "torchsm.toml").write_text(
        f'redis_url = "{url}"\n[personalities.torch]\nbase_cycle_s = 0.2\n'
        f"[supervisor]\nstop_grace_s = 1\nload_stretch_above = 0\n"
        f'[cluster]\nenabled = true\nhost = "{host}"\nheartbeat_s = 0.5\n'
        f"lease_s = {lease_s}\nsync_s = {sync_s}\n")
    config = load_config(home)
    for name in names:
        novas.add(home, config, name, personality="torch", account="work")
    return Cli(folder)


def supervise(cli: Cli, url: str, name: str, agent: Path) -> subprocess.Popen:
    return subprocess.Popen([*torchsm_executable(), "run", name, "--", "sh", str(agent)],
                            env=cli.env(TORCHSM_REDIS_URL=url), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_all(runs: list[subprocess.Popen]) -> None:
    for run in runs:
        run.terminate()
    for run in runs:
        run.communicate(timeout=30)


def agent_of(tmp_path: Path) -> tuple[Path, Path]:
    log, agent = tmp_path / "agent.log", tmp_path / "agent.sh"
    agent.write_text(AGENT.format(log=log))
    return agent, log


def synced(cli: Cli) -> bool:
    with store.open_store(Home(cli.home)) as db:
        return db.read(lambda conn: accounts.load_peers(conn, "work")) is not None


def state_of(cli: Cli, name: str, url: str) -> dict:
    (found,) = cli("status", name, "--json", TORCHSM_REDIS_URL=url).json()
    return found


def starts(log: Path, name: str) -> int:
    text = log.read_text() if log.exists() else ""
    return sum(1 for line in text.splitlines() if line.startswith(f"start {name} "))


def test_a_limit_heard_on_host_a_holds_host_b_within_two_seconds(tmp_path, redis_db):
    url = redis_db.url
    a = host_home(tmp_path / "a", "alpha", url, "na")
    b = host_home(tmp_path / "b", "beta", url, "nb")
    agent, log = agent_of(tmp_path)
    runs = [supervise(a, url, "na", agent), supervise(b, url, "nb", agent)]
    try:
        wait_for(lambda: synced(a) and synced(b))
        home_a = Home(a.home)
        now = time.time()
        limit = accounts.WindowRow("five_hour", "rejected", 1.0, now + 3600, now, "event",
                                   "na")
        heard = time.monotonic()
        with store.open_store(home_a) as db:  # as A's reader stores a rate_limit_event
            limits.learn(db, home_a, load_config(home_a), "work", [limit], now)
        held = wait_for(lambda: state_of(b, "nb", url)["state"] == "cooling", timeout=10)
        took = time.monotonic() - heard
        assert held and took <= 2.0, took
        nb = state_of(b, "nb", url)
        assert "usage limit: five_hour 100% rejected" in nb["reason"]
        b("queue", "add", "a task for b", "--nova", "nb", TORCHSM_REDIS_URL=url)
        time.sleep(1.5)
        assert starts(log, "nb") == 0
    finally:
        stop_all(runs)


def test_cut_off_from_the_server_starts_nothing_new_and_keeps_what_runs(tmp_path,
                                                                       start_redis):
    server = start_redis()
    url, lease_s = server.url, 2.0
    b = host_home(tmp_path / "b", "beta", url, "nb", "nc", lease_s=lease_s)
    agent, log = agent_of(tmp_path)
    b("queue", "add", "a long task", "--nova", "nb", TORCHSM_REDIS_URL=url)
    runs = [supervise(b, url, "nb", agent), supervise(b, url, "nc", agent)]
    try:
        wait_for(lambda: starts(log, "nb") == 1)
        server.stop()
        cut_at = time.time()
        b("queue", "add", "a task for nc", "--nova", "nc", TORCHSM_REDIS_URL=url)
        # (the account's start stagger, 5 s after nb's start, outlasts the lease)
        refusal = wait_for(lambda: _refusal(b, "nc", admission.Rule.CUT_OFF),
                           timeout=lease_s + 10)
        assert "cut off from the cluster server since" in refusal.why
        assert "no new session of shared account work" in refusal.why
        time.sleep(1.0)
        assert starts(log, "nc") == 0  # nothing new
        assert "end nb" not in log.read_text() and all(r.poll() is None for r in runs)
        assert time.time() - cut_at >= lease_s
        server.start()  # back on the same port
        wait_for(lambda: starts(log, "nc") == 1, timeout=15)
        assert "end nb" not in log.read_text()  # the long session ran on throughout
    finally:
        stop_all(runs)


def _refusal(cli: Cli, name: str, rule: admission.Rule) -> admission.Refusal | None:
    """The refusal of `rule` that admission gives a start of `name` now; None: another."""
    home = Home(cli.home)
    config = load_config(home)
    with store.open_store(home) as db:
        _, refusal = db.read(lambda conn: admission.check(
            conn, config, name, admission.Request("item", False), time.time()))
    return refusal if refusal is not None and refusal.rule is rule else None
