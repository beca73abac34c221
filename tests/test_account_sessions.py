"""Many Novas of one account under their own supervisors (issue 22, point 3): at most
`max_running_sessions` of the account's sessions run at once, and no two of its Novas
start within `start_stagger_s` of each other, also when a hold ends for all of them at
the same instant. Measured before the rules: five Novas held by a limit all started in
the same second after the reset.

Real `torchsm run` processes, a shell script as the agent; the agent's own log says
when each session ran, the ledger when each started."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from helpers import FAST, Cli, rows, torchsm_executable, write_config
from torchsm import novas
from torchsm.config import Config
from torchsm.storage import store
from torchsm.usage import accounts

NOVAS = ("n1", "n2", "n3", "n4", "n5")
# the agent notes its start and end (one write each on O_APPEND: lines never interleave)
AGENT = """\
echo "start $TORCHSM_NOVA $(date +%s.%N)" >> {log}
sleep {work_s}
echo "end $TORCHSM_NOVA $(date +%s.%N)" >> {log}
"""


def add_crew(home, account: str = "shared") -> None:
    for name in NOVAS:
        novas.add(home, Config(redis_url="off"), name, personality="torch", account=account)


def queue_items(cli: Cli, items_each: int) -> None:
    for name in NOVAS:
        for n in range(items_each):
            cli("queue", "add", f"{name}: task {n}", "--nova", name)


def supervise_all(cli: Cli, agent: Path) -> list[subprocess.Popen]:
    return [subprocess.Popen([*torchsm_executable(), "run", name, "--until-idle", "--",
                              "sh", str(agent)], env=cli.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in NOVAS]


def finish(runs: list[subprocess.Popen], timeout_s: float = 120) -> None:
    for run in runs:
        out, err = run.communicate(timeout=timeout_s)
        assert run.returncode == 0, err[-2000:]


def agent_of(tmp_path: Path, work_s: float) -> tuple[Path, Path]:
    log = tmp_path / "agent.log"
    agent = tmp_path / "agent.sh"
    agent.write_text(AGENT.format(log=log, work_s=work_s))
    return agent, log


def most_at_once(log: Path) -> int:
    """The most agents running at one time, by their own notes."""
    marks = sorted((float(at), 1 if word == "start" else -1)
                   for word, _, at in (line.split() for line in log.read_text().splitlines()))
    running = most = 0
    for _, change in marks:  # at a tie an end sorts first: it left before the other came
        running += change
        most = max(most, running)
    return most


def starts(cli: Cli) -> list[float]:
    return [at for (at,) in rows(cli, "SELECT started_at FROM sessions ORDER BY started_at")]


def test_five_novas_of_one_account_never_run_more_sessions_at_once_than_the_cap(
        cli, home, tmp_path):
    add_crew(home)
    write_config(home, FAST + "[accounts.shared]\nmax_running_sessions = 2\n"
                              "start_stagger_s = 0\n")
    agent, log = agent_of(tmp_path, work_s=1.0)
    queue_items(cli, items_each=2)
    finish(supervise_all(cli, agent))
    assert len(starts(cli)) == 10
    assert most_at_once(log) == 2  # the cap, reached and never passed


def test_an_account_held_by_a_limit_resumes_its_novas_one_by_one(cli, home, tmp_path):
    stagger_s, margin_s = 1.0, 0.5
    add_crew(home)
    write_config(home, FAST + f"[usage]\nreset_margin_s = {margin_s}\n"
                              f"start_stagger_s = {stagger_s}\n")
    queue_items(cli, items_each=1)
    reset = time.time() + 3  # the supervisors are up and holding well before it
    with store.open_store(home) as db:
        db.write(lambda conn: accounts.learn(conn, "shared", [accounts.WindowRow(
            "five_hour", "rejected", 1.0, reset, time.time())], time.time()))
    agent, _ = agent_of(tmp_path, work_s=0.1)
    finish(supervise_all(cli, agent))
    started = starts(cli)
    assert len(started) == 5
    after_reset = [round(at - reset, 3) for at in started]
    print("starts after the reset (s):", after_reset)
    assert started[0] >= reset + margin_s
    gaps = [b - a for a, b in zip(started, started[1:])]
    assert min(gaps) >= stagger_s, after_reset  # enforced on the ledger's own times
    # one by one, each at its slot: generous bounds for a loaded machine
    assert started[-1] <= reset + margin_s + 4 * stagger_s + 5, after_reset


def test_two_novas_of_one_account_share_its_starts_under_the_stagger(cli, home, tmp_path):
    """Sessions shorter than the stagger, started back to back: measured before the turn
    rule, the Nova that started first took nearly every start (the stagger counted only
    the other Novas' starts, so each of its own ends found the slot open for itself)."""
    stagger_s, items = 1.0, 12
    for name in ("n1", "n2"):
        novas.add(home, Config(redis_url="off"), name, personality="torch", account="shared")
    write_config(home, FAST.replace("[supervisor]\n", "[supervisor]\n"
                                    "max_sessions_per_hour = 1000\n")
                 + f"[usage]\nstart_stagger_s = {stagger_s}\n")
    for n in range(items):
        cli("queue", "add", f"task {n}")  # any Nova may claim it
    agent, _ = agent_of(tmp_path, work_s=0.1)
    finish([subprocess.Popen([*torchsm_executable(), "run", name, "--until-idle", "--",
                              "sh", str(agent)], env=cli.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("n1", "n2")])
    by_nova = rows(cli, "SELECT n.name, count(*) FROM sessions s JOIN novas n"
                        " ON n.id = s.nova_id GROUP BY n.name ORDER BY n.name")
    print("starts per Nova:", by_nova)
    assert sum(count for _, count in by_nova) == items
    assert min(count for _, count in by_nova) >= 4 and len(by_nova) == 2, by_nova
    started = starts(cli)
    assert min(b - a for a, b in zip(started, started[1:])) >= stagger_s
