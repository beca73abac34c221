"""`torchsm usage [NAME] [--since DURATION] [--daily | --monthly] [--utc]`."""

from __future__ import annotations

import datetime as dt
import time

import click

from torchsm.cli.common import Env, common_options, pass_env, table
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import DURATION


@click.command()
@click.argument("name", required=False, shell_complete=nova_names)
@click.option("--since", "since", metavar="DURATION", type=DURATION,
              help="How far back: 30m, 6h, 2d, ... [default: 24h; with --daily or "
                   "--monthly, the first session]")
@click.option("--daily", "period", flag_value="day", help="Totals per day.")
@click.option("--monthly", "monthly", is_flag=True, help="Totals per month.")
@click.option("--utc", is_flag=True, help="Days and months in UTC (default: local time).")
@common_options
@pass_env
def usage(env: Env, name: str | None, since: str | None, period: str | None, monthly: bool,
          utc: bool) -> None:
    """Per account: sessions, cost and tokens, the provider's usage windows as last
    reported (utilization, status, reset, which Nova heard it), the verdict, the Novas
    held for a usage limit, the cost of the last 24 hours, and when each window and the
    daily budget run out at the current rate; per Nova: sessions, turns, cost, tokens
    (in, out, cache write, cache read), models and errors (per hour, or per day beyond
    two days). With NAME, that Nova and its account. --daily / --monthly: the totals per
    day or month (sessions, tokens, cost, models)."""
    from torchsm.usage.report import parse_duration, usage_report

    if period and monthly:
        raise click.UsageError("--daily or --monthly, not both")
    period = "month" if monthly else period
    report = usage_report(env.home, env.config, name,
                          None if since is None else parse_duration(since), time.time(),
                          period=period, tz=dt.timezone.utc if utc else None)
    env.emit(report, lambda: _periods_text(report) if period else _text(report))


def _periods_text(report: dict) -> str:
    since = f"since {report['since']}" if report["since"] else "since the first session"
    rows = [[p["period"], *_used(p)] for p in report["periods"]]
    header = [report["period"].upper(), "SESSIONS", "IN", "OUT", "CACHE_WRITE", "CACHE_READ",
              "COST_USD", "MODELS"]
    return (f"per {report['period']} ({report['timezone']}), {since}:\n"
            + table([*rows, ["total", *_used(report["total"])]], header))


def _used(totals: dict) -> list:
    return [totals["sessions"], *totals["tokens"].values(), f"{totals['cost_usd']:.4f}",
            ", ".join(totals["models"]) or "-"]


def _text(report: dict) -> str:
    if not report["novas"] and not report["accounts"]:
        return "no Novas (add one with `torchsm nova add NAME`)"
    return "\n\n".join([_account_text(a) for a in report["accounts"]]
                       + [_nova_text(n, report) for n in report["novas"]])


def _account_text(account: dict) -> str:
    novas = ", ".join(account["novas"]) or "none"
    lines = [f"account {account['account']}: novas {novas}; "
             f"verdict {_verdict(account['verdict'])}",
             f"account {account['account']}: {_spent(account)}", _cost(account)]
    if account["windows"]:
        lines.append(table([[w["window"], _percent(w["utilization"]), w["status"],
                             _resets(w), w["updated_at"], w["heard_from"]]
                            for w in account["windows"]],
                           ["WINDOW", "UTILIZATION", "STATUS", "RESETS", "REPORTED", "BY"]))
    else:
        lines.append("no usage windows reported")
    lines += [f"{h['nova']}: held ({h['state']}) until {h['until'] or '?'}: {h['reason']}"
              for h in account["held"]]
    return "\n".join(lines + [_projection(account["projection"])])


def _spent(totals: dict) -> str:
    sessions = f"{totals['sessions']} session{'' if totals['sessions'] == 1 else 's'}"
    return f"{sessions}, ${totals['cost_usd']:.4f}, {_tokens(totals)}"


def _tokens(totals: dict) -> str:
    used = totals["tokens"]
    return (f"tokens {used['input']} in, {used['output']} out, {used['cache_creation']} "
            f"cache write, {used['cache_read']} cache read; models "
            f"{', '.join(totals['models']) or 'none reported'}")


def _projection(projected: dict) -> str:
    parts = [f"{w['window']} {w['says']}" for w in projected["windows"]]
    if projected["budget"] is not None:
        parts.append(f"daily budget {projected['budget']['says']}")
    return "projection: " + ("; ".join(parts) or "no windows reported, no daily budget")


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
    lines = [f"{nova['nova']}: {_summary(nova)} since {report['since']}",
             f"{nova['nova']}: {_tokens(nova)}"]
    if nova["buckets"]:
        lines.append(table([[b["start"], b["sessions"], b["turns"], f"{b['cost_usd']:.4f}",
                             *b["tokens"].values(), _errors(b["errors"])]
                            for b in nova["buckets"]],
                           [report["bucket"].upper(), "SESSIONS", "TURNS", "COST USD", "IN",
                            "OUT", "CACHE_WRITE", "CACHE_READ", "ERRORS"]))
    return "\n".join(lines)


def _summary(nova: dict) -> str:
    text = (f"{nova['sessions']} session{'' if nova['sessions'] == 1 else 's'}, "
            f"{nova['turns']} turns, ${nova['cost_usd']:.4f}")
    return text + (f", errors: {_errors(nova['errors'])}" if nova["errors"] else "")


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{key} x{count}" for key, count in sorted(errors.items())) or "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
