"""`torchsm usage`: what the Novas' sessions cost and what their accounts' windows say.

Read from the session ledger, the accounts' recorded usage windows and the Novas' holds
(stdlib sqlite only); the time is passed in.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from torchsm.clock import format_time
from torchsm.config import MAX_DURATION_S, Config, Home, cost_limit_for, usage_for
from torchsm.errors import TorchsmError
from torchsm.novas import held_for_limit
from torchsm.storage import store
from torchsm.usage import accounts, ledger, limits, projection, totals

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.I)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
HOUR_S, DAY_S = 3600, 86400
DEFAULT_SINCE_S = DAY_S
HOURLY_UP_TO_S = 2 * DAY_S  # longer spans are shown per day


def parse_duration(text: str) -> float:
    """`30m`, `6h`, `2d` (also `90s`) as seconds, at most ten years (further back is no
    time at all: before the epoch); TorchsmError for anything else."""
    match = _DURATION.match(text or "")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2).lower()] if match else 0.0
    if not 0 < seconds <= MAX_DURATION_S:
        raise TorchsmError(f"bad duration '{text}': use a positive number with s, m, h or "
                           f"d (e.g. 30m, 6h, 2d), at most {MAX_DURATION_S / 86400:.0f}d")
    return seconds


def usage_report(home: Home, config: Config, name: str | None, since_s: float | None,
                 now: float, period: str | None = None,
                 tz: dt.tzinfo | None = None) -> dict[str, Any]:
    """Per Nova: sessions, turns, cost, tokens, models and errors since `now - since_s`,
    per hour (per day beyond two days). Per account (every account with Novas or
    windows; with `name`, that Nova's account): the same totals over its Novas, its
    windows as last reported, its verdict, the Novas it holds for a usage limit, its
    cost over the last 24 hours against its daily budget, and the projection of when
    each runs out (torchsm.usage.projection). With `period` (day or month): the totals
    per day or month in `tz` (None: local time), since the first session unless
    `since_s` says otherwise (without a period, `since_s` None is 24 hours)."""
    if since_s is None and period is None:
        since_s = DEFAULT_SINCE_S
    since = 0.0 if since_s is None else now - since_s
    bucket_s = HOUR_S if since_s is not None and since_s <= HOURLY_UP_TO_S else DAY_S

    def read(conn) -> tuple[list, list, list]:  # one snapshot: Novas agree with accounts
        novas = store.load_novas_or_one(conn, name)
        only = [n.account for n in novas] if name is not None else None
        used = ledger.usage_since(conn, since, now)
        return _accounts(conn, config, only, used, now), novas, used

    with store.open_store(home, config.db.lock_timeout_s) as db:
        per_account, novas, used = db.read(read)
    mine = [u for u in used if u.nova in {n.name for n in novas}]
    report = {"since": format_time(since) if since_s is not None else None,
              "until": format_time(now), "bucket": "hour" if bucket_s == HOUR_S else "day",
              "accounts": per_account,
              "novas": [_nova_usage(n, [u for u in mine if u.nova == n.name], bucket_s)
                        for n in novas]}
    if period is not None:
        report.update(period=period, timezone=totals.zone_name(tz, now),
                      periods=totals.per_period(mine, period, tz), total=totals.totals(mine))
    return report


def recent_sessions(home: Home, config: Config, name: str | None,
                    limit: int) -> list[ledger.SessionRow]:
    """`torchsm sessions`: the latest `limit` sessions of Nova `name` (NovaNotFound when
    there is none), or of every Nova, newest first."""
    def read(conn) -> list[ledger.SessionRow]:
        nova_id = None if name is None else store.load_novas_or_one(conn, name)[0].id
        return ledger.latest(conn, nova_id, limit)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(read)


def _nova_usage(nova: store.NovaRow, used: list[ledger.SessionUsage],
                bucket_s: int) -> dict[str, Any]:
    return {"nova": nova.name, "account": nova.account, **totals.totals(used),
            "buckets": [{"start": format_time(start), **found} for start, found in
                        totals.grouped(used, lambda u: u.started_at // bucket_s * bucket_s)]}


def _accounts(conn, config: Config, only: list[str] | None,
              used: list[ledger.SessionUsage], now: float) -> list[dict[str, Any]]:
    windows = accounts.load_all_windows(conn)
    members: dict[str, list[store.NovaRow]] = {}
    for nova in store.load_novas(conn):
        members.setdefault(nova.account, []).append(nova)
    names = sorted(set(only) if only is not None else set(windows) | set(members))
    return [_account(conn, config, account, members.get(account, []),
                     windows.get(account, []), [u for u in used if u.account == account], now)
            for account in names]


def _account(conn, config: Config, account: str, members: list[store.NovaRow],
             windows: list[accounts.WindowRow], used: list[ledger.SessionUsage],
             now: float) -> dict[str, Any]:
    found = limits.verdict(conn, config, account, now)
    auto_resume = usage_for(config, account).auto_resume
    held = [n for n in members if held_for_limit(n)
            and (n.until is None or n.until > now or not auto_resume)]
    costs = ledger.costs_since(conn, account, now - DAY_S)
    limit_usd = float(cost_limit_for(config, account))
    return {"account": account, "novas": [n.name for n in members], **totals.totals(used),
            "windows": [_window_json(w, now) for w in windows],
            "verdict": {"kind": found.kind, "until": format_time(found.until),
                        "why": found.why},
            "held": [{"nova": n.name, "state": n.state, "until": format_time(n.until),
                      "reason": n.limit_hold} for n in held],
            "cost_usd_24h": round(sum((cost or 0.0 for _, cost in costs), 0.0), 6),
            "cost_limit_usd": limit_usd,
            "projection": _projection(windows, costs, limit_usd, now)}


def _projection(windows: list[accounts.WindowRow], costs: list[tuple[float, float]],
                limit_usd: float, now: float) -> dict[str, Any]:
    spent = projection.budget_projection(costs, limit_usd, now)
    return {"windows": [_times(p._asdict()) for p in
                        (projection.window_projection(w, now) for w in windows)],
            "budget": None if spent is None else _times(spent._asdict())}


def _times(fields: dict[str, Any]) -> dict[str, Any]:
    """The projection's times as the rest of the output writes them."""
    return {key: format_time(value) if key.endswith("_at") else value
            for key, value in fields.items()}


def _window_json(window: accounts.WindowRow, now: float) -> dict[str, Any]:
    return {"window": window.window, "status": window.status,
            "utilization": window.utilization, "resets_at": format_time(window.resets_at),
            "updated_at": format_time(window.updated_at),
            "current": window.resets_at is None or window.resets_at > now,
            "source": window.source, "heard_from": window.nova,
            "per_request": window.per_request}
