"""`torchsm usage`: what the Novas' sessions cost and what the provider's windows say.

Read from the session ledger and the recorded usage windows (stdlib sqlite only); the
time is passed in.
"""

from __future__ import annotations

import re
from typing import Any

from torchsm import store
from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.errors import NovaNotFound, TorchsmError
from torchsm.names import check_name

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.I)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
HOUR_S, DAY_S = 3600, 86400
HOURLY_UP_TO_S = 2 * DAY_S  # longer spans are shown per day


def parse_duration(text: str) -> float:
    """`30m`, `6h`, `2d` (also `90s`) as seconds; TorchsmError for anything else."""
    match = _DURATION.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise TorchsmError(f"bad duration '{text}': use a positive number with s, m, h or "
                           f"d (e.g. 30m, 6h, 2d)")
    return float(match.group(1)) * _UNIT_S[match.group(2).lower()]


def usage_report(home: Home, config: Config, name: str | None, since_s: float,
                 now: float) -> dict[str, Any]:
    """Per Nova: sessions, turns, cost and errors since `now - since_s`, per hour (per day
    beyond two days), and the current usage windows."""
    since = now - since_s
    bucket_s = HOUR_S if since_s <= HOURLY_UP_TO_S else DAY_S
    with store.open_store(home, config.db.lock_timeout_s) as db:
        novas = db.read(lambda conn: _novas(conn, name))
        per_nova = [db.read(lambda conn, n=n: _nova_usage(conn, n, since, now, bucket_s))
                    for n in novas]
    return {"since": format_time(since), "until": format_time(now),
            "bucket": "hour" if bucket_s == HOUR_S else "day", "novas": per_nova}


def _novas(conn, name: str | None) -> list[store.NovaRow]:
    if name is None:
        return store.load_novas(conn)
    row = store.load_nova(conn, check_name(name))
    if row is None:
        raise NovaNotFound(f"no Nova named '{name}'")
    return [row]


def _nova_usage(conn, nova: store.NovaRow, since: float, now: float,
                bucket_s: int) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT started_at, num_turns, cost_usd, outcome, api_error_status FROM sessions"
        " WHERE nova_id = ? AND started_at > ? AND started_at <= ? ORDER BY started_at",
        (nova.id, since, now)).fetchall()
    buckets: dict[float, list[tuple]] = {}
    for row in rows:
        buckets.setdefault(row[0] // bucket_s * bucket_s, []).append(row)
    windows = store.load_usage_windows(conn, nova.id)
    return {"nova": nova.name, **_totals(rows),
            "buckets": [{"start": format_time(start), **_totals(group)}
                        for start, group in sorted(buckets.items())],
            "windows": [_window_json(w, now) for w in windows]}


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


def _window_json(window: store.WindowRow, now: float) -> dict[str, Any]:
    return {"window": window.window, "status": window.status,
            "utilization": window.utilization, "resets_at": format_time(window.resets_at),
            "updated_at": format_time(window.updated_at),
            "current": window.resets_at is None or window.resets_at > now}
