"""Summing sessions' usage: sessions, turns, cost, tokens (input, output, cache write,
cache read), the models used and the errors, over any group of sessions: a Nova, an
account, an hour, a day or a month (in local time or UTC).

Pure: the sessions (ledger.SessionUsage rows) and the time zone are passed in.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable

TOKEN_KINDS = {"input": "input_tokens", "output": "output_tokens",
               "cache_creation": "cache_creation_tokens", "cache_read": "cache_read_tokens"}
PERIOD_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m"}


def totals(rows: Iterable) -> dict[str, Any]:
    """Sessions, turns, cost, tokens by kind, models (by name) and errors (by key) of
    `rows`; a number a session did not report counts 0."""
    rows = list(rows)
    errors: dict[str, int] = {}
    for row in rows:
        key = error_key(row.outcome, row.api_error_status)
        if key is not None:
            errors[key] = errors.get(key, 0) + 1
    return {"sessions": len(rows), "turns": sum(r.num_turns or 0 for r in rows),
            "cost_usd": round(sum(r.cost_usd or 0.0 for r in rows), 6),
            "tokens": {kind: sum(getattr(r, column) or 0 for r in rows)
                       for kind, column in TOKEN_KINDS.items()},
            "models": sorted({r.model for r in rows if r.model}), "errors": errors}


def error_key(outcome: str, api_error_status: int | None) -> str | None:
    """How an error is counted: by the API's status when there is one (`429`), else by
    the outcome (`crashed`); None for a session that did not fail."""
    if api_error_status:
        return str(api_error_status)
    if outcome in ("ok", "running", "stopped"):
        return None
    return outcome


def grouped(rows: Iterable, key: Callable[[Any], Any]) -> list[tuple[Any, dict[str, Any]]]:
    """(key, totals) per value of `key(row)`, in the keys' order."""
    groups: dict[Any, list] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [(k, totals(group)) for k, group in sorted(groups.items())]


def period_of(started_at: float, period: str, tz: dt.tzinfo | None) -> str:
    """The day (`2026-11-01`) or month (`2026-11`) a session started in, in `tz` (None:
    the local time zone)."""
    when = dt.datetime.fromtimestamp(started_at, tz)
    return when.strftime(PERIOD_FORMATS[period])


def per_period(rows: Iterable, period: str, tz: dt.tzinfo | None) -> list[dict[str, Any]]:
    """Totals per day or month, oldest first."""
    return [{"period": name, **found}
            for name, found in grouped(rows, lambda r: period_of(r.started_at, period, tz))]


def zone_name(tz: dt.tzinfo | None, at: float) -> str:
    """What the periods' time zone is called (`UTC`, `CET`, ...)."""
    return dt.datetime.fromtimestamp(at, tz).astimezone(tz).tzname() or "local"
