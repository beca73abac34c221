"""`torchsm metrics [NAME] [--since DURATION] [--format text|json|prometheus]`."""

from __future__ import annotations

import time
from typing import Any

import click

from torchsm.cli.common import Env, common_options, json_line, pass_env, printable, table
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import DURATION

FORMATS = ("text", "json", "prometheus")


@click.command()
@click.argument("name", required=False, shell_complete=nova_names)
@click.option("--since", "since", default="24h", show_default=True, metavar="DURATION",
              type=DURATION,
              help="The window: 30m, 6h, 2d, ...")
@click.option("--format", "output", type=click.Choice(FORMATS), default=None,
              help="Output format (default text; --json is --format json).")
@common_options
@pass_env
def metrics(env: Env, name: str | None, since: str, output: str | None) -> None:
    """The eight metric families of each Nova (or of NAME) over the window: uptime, work,
    wake signals, hooks, coordination, dreams, rhythm, error recovery; the account's
    usage; a 0-100 health score with its trend against the window before, and
    recommendations naming the metric behind them."""
    from torchsm.usage.report import parse_duration

    since_s = parse_duration(since)
    output = output or ("json" if env.json else "text")
    if output == "prometheus":
        from torchsm.observe.prometheus import DatabaseCollector, exposition

        click.echo(exposition(DatabaseCollector(env.home, env.config, name, since_s)), nl=False)
        return
    from torchsm.observe.health import measure

    found = measure(env.home, env.config, name, since_s, time.time())
    if output == "json":
        click.echo(json_line(found.as_json()))
    else:
        click.echo(printable(render(found.as_json())))


# what the text shows of each family, in order: (family, [(label, key), ...])
_COLUMNS = {
    "uptime": [("sessions", "sessions"), ("restarts", "restarts"),
               ("failed", "sessions_failed"), ("stability", "stability"),
               ("transitions", "transitions")],
    "work": [("done", "items_done"), ("failed", "items_failed"), ("dead", "items_dead"),
             ("per hour", "throughput_per_hour"), ("success", "success_rate"),
             ("queue", "queue_depth"), ("age p90", "queue_age_p90_s")],
    "wake": [("signals", "signals"), ("started", "sessions_started"),
             ("latency by tier", "latency_avg_s_by_tier")],
    "hooks": [("runs", "runs"), ("per hour", "runs_per_hour"), ("errors", "errors"),
              ("bangs", "bangs"), ("recoveries", "recoveries")],
    "coordination": [("sent", "sent"), ("received", "received"), ("senders", "senders"),
                     ("partners", "partners")],
    "dreams": [("dreams", "dreams"), ("insights", "insights"), ("proposals", "proposals"),
               ("acted on", "proposals_acted_on")],
    "rhythm": [("floor", "floor_s"), ("gaps", "gaps"), ("compliance", "compliance"),
               ("mean gap", "gap_mean_s"), ("adaptation", "adaptation")],
    "recovery": [("cooldowns", "cooldowns"), ("emergencies", "emergencies"),
                 ("meditations", "meditations"), ("recoveries", "recoveries"),
                 ("recover mean", "time_to_recover_mean_s")],
    "usage": [("cost", "cost_usd"), ("per day", "cost_usd_per_day"), ("refused", "refused")],
}


def render(report: dict[str, Any]) -> str:
    if not report["novas"]:
        return "no Novas (add one with `torchsm nova add NAME`)"
    health = report["health"]
    lines = [f"{report['since']} .. {report['until']}: health {_score(health)}"]
    for nova in report["novas"]:
        lines += ["", _nova_text(nova)]
    for account in report["accounts"]:
        lines += ["", _account_text(account)]
    return "\n".join(lines)


def _score(health: dict[str, Any]) -> str:
    if health["score"] is None:
        return "-"
    trend = health.get("trend")
    return f"{health['score']:g}" + ("" if trend is None else f" ({trend:+g})")


def _nova_text(nova: dict[str, Any]) -> str:
    health = nova["health"]
    lines = [f"{nova['nova']} ({nova['personality']}, {nova['state']}): "
             f"health {_score(health)}"]
    rows = [[family, *(f"{label} {_value(nova[family].get(key))}" for label, key in cols)]
            for family, cols in _COLUMNS.items()]
    width = max(len(r) for r in rows)
    lines.append(table([r + [""] * (width - len(r)) for r in rows],
                       ["FAMILY"] + [""] * (width - 1)))
    lines += [f"  - {text}" for text in health["recommendations"]]
    return "\n".join(lines)


def _account_text(account: dict[str, Any]) -> str:
    windows = ", ".join(f"{w} {u * 100:.0f}%" for w, u in
                        account["utilization_by_window"].items()) or "none reported"
    return (f"account {account['account']}: windows {windows}; {account['sessions']} "
            f"sessions, ${account['cost_usd']:.4f} (${account['cost_usd_per_day']:.4f} a day),"
            f" {account['refused']} refused")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ",".join(f"{k}:{_value(v)}" for k, v in sorted(value.items())) or "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
