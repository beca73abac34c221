"""`torchsm alerts`."""

from __future__ import annotations

import time

import click

from torchsm.cli.common import Env, common_options, pass_env, table, warn
from torchsm.cli.times import shown, text_clock


@click.command()
@click.option("--all", "everything", is_flag=True, help="Resolved alerts too.")
@common_options
@pass_env
def alerts(env: Env, everything: bool) -> None:
    """Evaluate the alert conditions ([alerts] in torchsm.toml), then list the open
    alerts (with --all, the resolved ones too), oldest first.

    \b
    Conditions: bangs per hour, meditations per day, dead work items, requests the API
    refused, a Nova held by a usage limit, a supervisor that stopped, billing and
    authentication failures. A failed `[alerts] command` is one `torchsm: warning: ...`
    line on stderr; the alert is kept and the command tried again later."""
    from torchsm.alerts import delivery
    from torchsm.alerts import conditions as alerts_lib

    alerts_lib.evaluate(env.home, env.config, time.time())
    for line in delivery.deliver_pending(env.home, env.config, time.time):
        warn(line)
    rows = [a.as_json() for a in alerts_lib.list_alerts(env.home, env.config, everything)]
    env.emit(rows, lambda: _text(rows, everything))


def _text(rows: list[dict], everything: bool) -> str:
    if not rows:
        return "no alerts" if everything else "no open alerts"
    clock = text_clock()
    return table([[r["id"], shown(r["at"], clock), shown(r["resolved_at"], clock) or "open",
                   r["nova"], r["kind"],
                   r["message"], _delivery(r)] for r in rows],
                 ["ID", "RAISED", "RESOLVED", "NOVA", "KIND", "MESSAGE", "DELIVERY"])


def _delivery(row: dict) -> str:
    if row["last_error"] and row["delivery"] != "sent":
        return f"{row['delivery']} ({row['attempts']} tries: {row['last_error']})"
    return row["delivery"]
