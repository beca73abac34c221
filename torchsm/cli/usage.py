"""`torchsm usage [NAME] [--since DURATION]`."""

from __future__ import annotations

import time

import click

from torchsm.cli.common import Env, common_options, pass_env, table


@click.command()
@click.argument("name", required=False)
@click.option("--since", "since", default="24h", show_default=True, metavar="DURATION",
              help="How far back: 30m, 6h, 2d, ...")
@common_options
@pass_env
def usage(env: Env, name: str | None, since: str) -> None:
    """Sessions, turns, cost and errors per Nova (per hour, or per day beyond two days),
    and the provider's usage windows as last reported (utilization, status, reset)."""
    from torchsm.usage_report import parse_duration, usage_report

    report = usage_report(env.home, env.config, name, parse_duration(since), time.time())
    env.emit(report, lambda: _text(report))


def _text(report: dict) -> str:
    if not report["novas"]:
        return "no Novas (add one with `torchsm nova add NAME`)"
    return "\n\n".join(_nova_text(n, report) for n in report["novas"])


def _nova_text(nova: dict, report: dict) -> str:
    lines = [f"{nova['nova']}: {_summary(nova)} since {report['since']}"]
    if nova["buckets"]:
        lines.append(table([[b["start"], b["sessions"], b["turns"], f"{b['cost_usd']:.4f}",
                             _errors(b["errors"])] for b in nova["buckets"]],
                           [report["bucket"].upper(), "SESSIONS", "TURNS", "COST USD",
                            "ERRORS"]))
    if nova["windows"]:
        lines.append(table([[w["window"], _percent(w["utilization"]), w["status"],
                             w["resets_at"], w["updated_at"],
                             "" if w["current"] else "(reset since)"]
                            for w in nova["windows"]],
                           ["WINDOW", "UTILIZATION", "STATUS", "RESETS", "REPORTED", ""]))
    else:
        lines.append("no usage windows reported")
    return "\n".join(lines)


def _summary(nova: dict) -> str:
    text = (f"{nova['sessions']} session{'' if nova['sessions'] == 1 else 's'}, "
            f"{nova['turns']} turns, ${nova['cost_usd']:.4f}")
    return text + (f", errors: {_errors(nova['errors'])}" if nova["errors"] else "")


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{key} x{count}" for key, count in sorted(errors.items())) or "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
