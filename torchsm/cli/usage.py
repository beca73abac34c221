"""`torchsm usage [NAME] [--since DURATION]`."""

from __future__ import annotations

import time

import click

from torchsm.cli.common import Env, common_options, pass_env, table
from torchsm.cli.numbers import DURATION


@click.command()
@click.argument("name", required=False)
@click.option("--since", "since", default="24h", show_default=True, metavar="DURATION",
              type=DURATION,
              help="How far back: 30m, 6h, 2d, ...")
@common_options
@pass_env
def usage(env: Env, name: str | None, since: str) -> None:
    """Per account: the provider's usage windows as last reported (utilization, status,
    reset, which Nova heard it), the verdict, the Novas held for a usage limit and the
    cost of the last 24 hours; per Nova: sessions, turns, cost and errors (per hour, or per
    day beyond two days). With NAME, that Nova and its account."""
    from torchsm.usage.report import parse_duration, usage_report

    report = usage_report(env.home, env.config, name, parse_duration(since), time.time())
    env.emit(report, lambda: _text(report))


def _text(report: dict) -> str:
    if not report["novas"] and not report["accounts"]:
        return "no Novas (add one with `torchsm nova add NAME`)"
    return "\n\n".join([_account_text(a) for a in report["accounts"]]
                       + [_nova_text(n, report) for n in report["novas"]])


def _account_text(account: dict) -> str:
    novas = ", ".join(account["novas"]) or "none"
    lines = [f"account {account['account']}: novas {novas}; "
             f"verdict {_verdict(account['verdict'])}", _cost(account)]
    if account["windows"]:
        lines.append(table([[w["window"], _percent(w["utilization"]), w["status"],
                             _resets(w), w["updated_at"], w["heard_from"]]
                            for w in account["windows"]],
                           ["WINDOW", "UTILIZATION", "STATUS", "RESETS", "REPORTED", "BY"]))
    else:
        lines.append("no usage windows reported")
    lines += [f"{h['nova']}: held ({h['state']}) until {h['until'] or '?'}: {h['reason']}"
              for h in account["held"]]
    return "\n".join(lines)


def _verdict(verdict: dict) -> str:
    if verdict["kind"] == "ok":
        return "ok"
    return f"{verdict['kind']} until {verdict['until'] or '?'} ({verdict['why']})"


def _cost(account: dict) -> str:
    limit = account["cost_limit_usd"]
    return (f"cost in the last 24 h: ${account['cost_usd_24h']:.4f}"
            + (f" of ${limit:.2f} a day" if limit else " (no daily budget)"))


def _resets(window: dict) -> str | None:
    if window["current"] or window["resets_at"] is None:
        return window["resets_at"]
    return f"{window['resets_at']} (reset since)"


def _nova_text(nova: dict, report: dict) -> str:
    lines = [f"{nova['nova']}: {_summary(nova)} since {report['since']}"]
    if nova["buckets"]:
        lines.append(table([[b["start"], b["sessions"], b["turns"], f"{b['cost_usd']:.4f}",
                             _errors(b["errors"])] for b in nova["buckets"]],
                           [report["bucket"].upper(), "SESSIONS", "TURNS", "COST USD",
                            "ERRORS"]))
    return "\n".join(lines)


def _summary(nova: dict) -> str:
    text = (f"{nova['sessions']} session{'' if nova['sessions'] == 1 else 's'}, "
            f"{nova['turns']} turns, ${nova['cost_usd']:.4f}")
    return text + (f", errors: {_errors(nova['errors'])}" if nova["errors"] else "")


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{key} x{count}" for key, count in sorted(errors.items())) or "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
