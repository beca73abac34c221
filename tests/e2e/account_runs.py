"""Subscription accounts played end to end: each Nova under its own `torchsm run`, the real
Claude Code (hooks installed, so a session continues through the queue) in subscription
mode, and per account a stand-in whose Account counts every request of every client.

A Plan may place its Novas on hosts (issue 23): each host a home of its own with
`[cluster] enabled`, all on one redis-server, so an account's Novas on several hosts share
one stand-in Account as they would share one subscription.

Shared by tests/e2e/test_accounts_e2e.py, test_accounts_cluster_e2e.py and
bench/bench_usage_accounts.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

E2E = Path(__file__).resolve().parent
sys.path[:0] = [str(E2E), str(E2E.parent)]

from helpers import Cli, rows, torchsm_executable, write_config  # noqa: E402
from standin import Account, StandIn  # noqa: E402
from torchsm.config import Home  # noqa: E402

CONFIG = """
redis_url = "off"
[supervisor]
max_sessions_per_hour = 1000
load_stretch_above = 0
[safety]
hook_burst = 1000
[usage]
reset_margin_s = 1
# what these runs measure is sharing a window: the stagger between Novas' starts has a test
# of its own (test_stagger_e2e.py); here it would push restarts past the window's reset
start_stagger_s = 0
"""
PERSONALITY = """
[personalities.{name}]
base_cycle_s = 0.2
reflection_every = 1000
dream_probability = 0
"""


@dataclass
class Plan:
    novas: dict[str, str]  # Nova -> account
    window_s: int = 15
    allowance: dict[str, int] = field(default_factory=dict)  # account -> N (default 6)
    items: int = 100  # per Nova
    run_s: float = 48.0
    hosts: dict[str, str] = field(default_factory=dict)  # Nova -> host; empty: one home
    redis_url: str = "off"  # the cluster's server, when there are hosts
    sync_s: float = 0.5  # each host's [cluster] sync_s


CLUSTER = """
[cluster]
enabled = true
host = "{host}"
heartbeat_s = 0.5
lease_s = 10
sync_s = {sync_s}
"""


@dataclass
class Played:
    reports: dict[str, list[dict]]  # account -> Account.report()
    requests: dict[str, list]  # account -> Account.requests (time, window, accepted, client)
    status: dict[str, dict]  # Nova -> `status --json` row
    events: dict[str, list[dict]]  # Nova -> its supervisor's --json events
    done: dict[str, int]  # Nova -> items done
    clients: dict[str, str] = field(default_factory=dict)  # Claude session id -> Nova
    hosts: dict[str, str] = field(default_factory=dict)  # Nova -> host ("" one home)

    def whole(self, account: str) -> list[dict]:
        return [w for w in self.reports[account] if w["whole"]]

    def refused(self, account: str) -> int:
        return sum(w["refused"] for w in self.reports[account])

    def restarts(self, account: str) -> list[float]:
        """Per whole window after the first: seconds from its start (the previous one's
        reset) to its first request."""
        firsts: dict[int, float] = {}
        for request in self.requests[account]:
            firsts.setdefault(request.window, request.time)
        return [firsts[w["window"]] - w["start"] for w in self.whole(account)[1:]
                if w["window"] in firsts]

    def per_host(self, account: str) -> list[dict]:
        """Per window: requests accepted and refused by host (a session the homes did not
        record is counted under "?")."""
        found: dict[int, dict] = {}
        for request in self.requests[account]:
            host = self.hosts.get(self.clients.get(request.client or "", ""), "?")
            counts = found.setdefault(request.window, {}).setdefault(
                host, {"accepted": 0, "refused": 0})
            counts["accepted" if request.accepted else "refused"] += 1
        return [{"window": k, "hosts": v} for k, v in sorted(found.items())]

    def summary(self, account: str) -> str:
        shares = ", ".join(f"{w['used']}/{w['used'] and round(w['used'] / w['share'])}"
                           for w in self.whole(account))
        return f"{account}: whole windows used {shares}; refused {self.refused(account)}"


def play(plan: Plan, home: Path, claude: Path, workdir: Path) -> Played:
    homes = _homes(plan, home)
    accounts = sorted(set(plan.novas.values()))
    standins = {a: StandIn(Account(plan.window_s, plan.allowance.get(a, 6))).start()
                for a in accounts}
    runs: dict[str, subprocess.Popen] = {}
    try:
        for name, account in plan.novas.items():
            _prepare(homes[name], name, account, plan.items, workdir)
        for name, account in plan.novas.items():
            runs[name] = _start(homes[name], name, claude, workdir, standins[account].url,
                                plan.redis_url)
        time.sleep(plan.run_s)
    finally:
        events = {name: _stop(run) for name, run in runs.items()}
        reports = {a: s.policy.report() for a, s in standins.items()}
        requests = {a: s.policy.requests for a, s in standins.items()}
        for s in standins.values():
            s.stop()
    status, done, clients = {}, {}, {}
    for cli in {c.home: c for c in homes.values()}.values():
        status |= {row["nova"]: row for row in cli("status", "--json").json()}
        clients |= dict(rows(cli, "SELECT s.agent_session_id, n.name FROM sessions s JOIN"
                             " novas n ON n.id = s.nova_id WHERE s.agent_session_id IS NOT"
                             " NULL"))
    for name, cli in homes.items():
        done[name] = len(cli("queue", "list", "--nova", name, "--status", "done",
                             "--json").json())
    hosts = {name: plan.hosts.get(name, "") for name in plan.novas}
    return Played(reports, requests, status, events, done, clients, hosts)


def _homes(plan: Plan, home: Path) -> dict[str, Cli]:
    """Nova -> the CLI of its home, each home initialised and configured: one home, or
    one per host (`home/HOST`) on the plan's server."""
    personalities = "".join(PERSONALITY.format(name=n) for n in plan.novas)
    by_host: dict[str, Cli] = {}
    for host in sorted(set(plan.hosts.values())) or [""]:
        cli = Cli(home / host if host else home)
        cli("init")
        config = host_config(host, plan.redis_url, plan.sync_s) if host else CONFIG
        write_config(Home(cli.home), config + personalities)
        by_host[host] = cli
    return {name: by_host[plan.hosts.get(name, "")] for name in plan.novas}


def host_config(host: str, redis_url: str, sync_s: float) -> str:
    """CONFIG for one host of a cluster: on the cluster's server, `[cluster] enabled`."""
    return (CONFIG.replace('redis_url = "off"', f'redis_url = "{redis_url}"', 1)
            + CLUSTER.format(host=host, sync_s=sync_s))


def _prepare(cli: Cli, name: str, account: str, items: int, workdir: Path) -> None:
    cli("nova", "add", name, "--account", account)
    project = workdir / name
    project.mkdir(parents=True)
    cli("hooks", "install", "--nova", name, "--project", str(project))
    lines = "".join(json.dumps({"text": f"{name}: task {n}", "nova": name}) + "\n"
                    for n in range(items))
    queue_file = workdir / f"{name}.jsonl"
    queue_file.write_text(lines)
    cli("queue", "import", str(queue_file))


def _start(cli: Cli, name: str, claude: Path, workdir: Path, url: str,
           redis_url: str = "off") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_", "CLAUDECODE"))}
    env.update(TORCHSM_HOME=str(cli.home), TORCHSM_REDIS_URL=redis_url, ANTHROPIC_BASE_URL=url,
               CLAUDE_CODE_OAUTH_TOKEN="standin-oauth", CLAUDE_CONFIG_DIR=str(
                   workdir / f"{name}-claude-config"), DISABLE_TELEMETRY="1",
               DISABLE_ERROR_REPORTING="1", DISABLE_AUTOUPDATER="1",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", CLAUDE_CODE_MAX_RETRIES="0",
               TZ="UTC")
    command = [str(claude), "-p", "{prompt}", "--output-format", "stream-json", "--verbose"]
    return subprocess.Popen([*torchsm_executable(), "run", name, "--json", "--cwd",
                             str(workdir / name), "--", *command],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)


def _stop(run: subprocess.Popen) -> list[dict]:
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    if run.returncode != 0:
        raise AssertionError(f"torchsm run exited {run.returncode}: {err[-2000:]}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]
