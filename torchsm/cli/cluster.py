"""`torchsm cluster status`: several hosts on one server (torchsm.cluster)."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, table


@click.group()
@common_options
def cluster() -> None:
    """Several hosts on one Redis/Dragonfly server: hosts, heartbeats, shared work,
    shared memories and messages.

    The server is `redis_url`; `[cluster] host` names this host (default: the machine's
    host name)."""


@cluster.command("status")
@common_options
@pass_env
def cluster_status(env: Env) -> None:
    """Show the hosts and their heartbeats, each work stream's length, lag and pending
    entries, the dead letters, and each shared account's merged windows (who heard them)
    with its requests in flight and running sessions per host."""
    from torchsm.cluster.status import cluster_status as status_of

    status = status_of(env.config)
    env.emit(status, lambda: _status_text(status))


def _status_text(status: dict) -> str:
    hosts = table([[h["host"], h["last_beat"], f"{h['age_s']:.1f}s ago",
                    "alive" if h["alive"] else "dead"] for h in status["hosts"]],
                  ["HOST", "LAST BEAT", "AGE", "STATE"]) if status["hosts"] else "no host has beaten yet"
    streams = table([[s["stream"], s["length"], s["lag"], s["pending"],
                      ", ".join(f"{name} {count}" for name, count in s["consumers"].items())]
                     for s in status["streams"]],
                    ["STREAM", "LENGTH", "LAG", "PENDING", "HELD BY"])
    return (f"server {status['server']}, this host {status['host']}, server time "
            f"{status['server_time']}, lease {status['lease_s']:g}s\n\n{hosts}\n\n{streams}\n\n"
            f"dead letters  {status['dead_letters']}\n\n{_accounts_text(status['accounts'])}"
            f"\n\n{_intake_text(status.get('intake', []))}")


def _intake_text(rows: list[dict]) -> str:
    if not rows:
        return "no host has taken in shared memories or messages yet"
    return table([[r["host"], "-" if r["lag"] is None else r["lag"], r["pending"]]
                  for r in rows], ["INTAKE OF HOST", "LAG", "PENDING"])


def _accounts_text(shared: list[dict]) -> str:
    if not shared:
        return "no account shared yet"
    rows = [[a["account"], w.get("window", "-"), _pct(w.get("utilization")),
             w.get("status") or "-", w.get("resets_at") or "-", w.get("heard_by") or "-",
             _hosts(a["in_flight"]), _hosts(a["running"])]
            for a in shared for w in (a["windows"] or [{}])]
    return table(rows, ["ACCOUNT", "WINDOW", "USED", "STATUS", "RESETS", "HEARD BY",
                        "IN FLIGHT", "RUNNING"])


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _hosts(counts: dict) -> str:
    return ", ".join(f"{host} {n}" for host, n in sorted(counts.items())) or "-"


@cluster.command("intake")
@common_options
@pass_env
def cluster_intake(env: Env) -> None:
    """Take in what other hosts shared (memories, messages to this host's Novas), in
    order, and print it. Supervisors do it with every heartbeat; this is for a host with
    none running. It waits for a pass another process of this host is making."""
    from torchsm.cluster.intake import APPLIED, take_in

    taken = take_in(env.home, env.config)
    counts = taken.counts
    env.emit(taken.as_json(), lambda: (
        "took in " + ", ".join(f"{counts[what]} {what}" for what in APPLIED)
        + f"; skipped: own {counts['own']}, for other hosts {counts['elsewhere']}, other "
          f"{counts['other']}, malformed {counts['malformed']}; read again {taken.reread}"))
