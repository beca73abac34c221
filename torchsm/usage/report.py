"""`torchsm usage`: what the Novas' sessions cost and what their accounts' windows say.

Read from the session ledger, the accounts' recorded usage windows and the Novas' holds
(stdlib sqlite only); the time is passed in.
"""

from __future__ import annotations

import re
from typing import Any

from torchsm.clock import format_time
from torchsm.config import MAX_DURATION_S, Config, Home, cost_limit_for, usage_for
from torchsm.errors import TorchsmError
from torchsm.novas import held_for_limit
from torchsm.storage import store
from torchsm.usage import accounts, ledger, limits

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.I)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
HOUR_S, DAY_S = 3600, 86400
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


def usage_report(home: Home, config: Config, name: str | None, since_s: float,
                 now: float) -> dict[str, Any]:
    """Per Nova: sessions, turns, cost and errors since `now - since_s`, per hour (per day
    beyond two days). Per account (every account with Novas or windows; with `name`, that
    Nova's account): its windows as last reported, its verdict, the Novas it holds for a
    usage limit, and its cost over the last 24 hours against its daily budget."""
    since = now - since_s
    bucket_s = HOUR_S if since_s <= HOURLY_UP_TO_S else DAY_S

    def read(conn) -> tuple[list, list]:  # one snapshot: the Novas agree with their accounts
        novas = store.load_novas_or_one(conn, name)
        only = [n.account for n in novas] if name is not None else None
        return (_accounts(conn, config, only, now),
                [_nova_usage(conn, n, since, now, bucket_s) for n in novas])

    with store.open_store(home, config.db.lock_timeout_s) as db:
        per_account, per_nova = db.read(read)
    return {"since": format_time(since), "until": format_time(now),
            "bucket": "hour" if bucket_s == HOUR_S else "day", "accounts": per_account,
            "novas": per_nova}


def recent_sessions(home: Home, config: Config, name: str | None,
                    limit: int) -> list[ledger.SessionRow]:
    """`torchsm sessions`: the latest `limit` sessions of Nova `name` (NovaNotFound when
    there is none), or of every Nova, newest first."""
    def read(conn) -> list[ledger.SessionRow]:
        nova_id = None if name is None else store.load_novas_or_one(conn, name)[0].id
        return ledger.latest(conn, nova_id, limit)

    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(read)


def _nova_usage(conn, nova: store.NovaRow, since: float, now: float,
                bucket_s: int) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT started_at, num_turns, cost_usd, outcome, api_error_status FROM sessions"
        " WHERE nova_id = ? AND started_at > ? AND started_at <= ? ORDER BY started_at",
        (nova.id, since, now)).fetchall()
    buckets: dict[float, list[tuple]] = {}
    for row in rows:
        buckets.setdefault(row[0] // bucket_s * bucket_s, []).append(row)
    return {"nova": nova.name, "account": nova.account, **_totals(rows),
            "buckets": [{"start": format_time(start), **_totals(group)}
                        for start, group in sorted(buckets.items())]}


def _accounts(conn, config: Config, only: list[str] | None,
              now: float) -> list[dict[str, Any]]:
    windows = accounts.load_all_windows(conn)
    members: dict[str, list[store.NovaRow]] = {}
    for nova in store.load_novas(conn):
        members.setdefault(nova.account, []).append(nova)
    names = sorted(set(only) if only is not None else set(windows) | set(members))
    return [_account(conn, config, account, members.get(account, []),
                     windows.get(account, []), now) for account in names]


def _account(conn, config: Config, account: str, members: list[store.NovaRow],
             windows: list[accounts.WindowRow], now: float) -> dict[str, Any]:
    found = limits.verdict(conn, config, account, now)
    auto_resume = usage_for(config, account).auto_resume
    held = [n for n in members if held_for_limit(n)
            and (n.until is None or n.until > now or not auto_resume)]
    costs = ledger.costs_since(conn, account, now - DAY_S)
    return {"account": account, "novas": [n.name for n in members],
            "windows": [_window_json(w, now) for w in windows],
            "verdict": {"kind": found.kind, "until": format_time(found.until),
                        "why": found.why},
            "held": [{"nova": n.name, "state": n.state, "until": format_time(n.until),
                      "reason": n.limit_hold} for n in held],
            "cost_usd_24h": round(sum((cost or 0.0 for _, cost in costs), 0.0), 6),
            "cost_limit_usd": float(cost_limit_for(config, account))}


def _totals(rows: list[tuple]) -> dict[str, Any]:
    errors: dict[str, int] = {}
    for _, _, _, outcome, api_status in rows:
        key = error_key(outcome, api_status)
        if key is not None:
            errors[key] = errors.get(key, 0) + 1
    return {"sessions": len(rows), "turns": sum(r[1] or 0 for r in rows),
            "cost_usd": round(sum(r[2] or 0.0 for r in rows), 6), "errors": errors}


def error_key(outcome: str, api_error_status: int | None) -> str | None:
    """How an error is counted: by the API's status when there is one (`429`), else by
    the outcome (`crashed`); None for a session that did not fail."""
    if api_error_status:
        return str(api_error_status)
    if outcome in ("ok", "running", "stopped"):
        return None
    return outcome


def _window_json(window: accounts.WindowRow, now: float) -> dict[str, Any]:
    return {"window": window.window, "status": window.status,
            "utilization": window.utilization, "resets_at": format_time(window.resets_at),
            "updated_at": format_time(window.updated_at),
            "current": window.resets_at is None or window.resets_at > now,
            "source": window.source, "heard_from": window.nova,
            "per_request": window.per_request}
