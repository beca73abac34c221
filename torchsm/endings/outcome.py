"""What a finished agent session means for its Nova.

Structured signals first: Claude Code's result object (`is_error`, `api_error_status`)
and its rate_limit_events (`resetsAt`), present only when the agent speaks Claude Code's
JSON (session.speaks_claude_code). The text of a usage-limit, rate-limit or account
message is a fallback only, read from Claude Code's own error result alone
(`SessionOutput.error_text`), never from what a model or a task says; an unparseable one
yields no reset time, which callers turn into backoff, never into an immediate retry.
Any other agent CLI is judged by its exit status: its words are its own.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from torchsm.agent.session import SessionRun
from torchsm.endings.responses import ACCOUNT_ERROR_TYPES
from torchsm.outcomes import Outcome
from torchsm.usage import resets
from torchsm.usage.ledger import SessionEnd, reported

# Said by Claude Code when an account is at its limit.
USAGE_LIMIT_TEXT = re.compile(
    r"usage limit reached|hit your [\w -]*limit|out of extra usage|limit will reset", re.I)
# The account itself is refused (billing, authentication): retrying cannot help.
ACCOUNT_STATUSES = (401, 402, 403)
ACCOUNT_TEXT = re.compile("|".join([*ACCOUNT_ERROR_TYPES, "invalid api key",
                                    "credit balance is too low"]), re.I)
# Said by Claude Code when a request was refused for its rate.
RATE_LIMIT_TEXT = re.compile(r"rate[ _-]?limit|\b429\b|too many requests", re.I)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    error: str | None = None
    reset_at: float | None = None  # when the provider says the limit resets, if it said

    @property
    def failed(self) -> bool:
        return self.outcome not in (Outcome.OK, Outcome.STOPPED)


def judge(run: SessionRun, *, crash_window_s: float, now: float,
          tz: dt.tzinfo | None = None) -> Verdict:
    """The outcome of one finished session."""
    if run.stopped:
        return Verdict(Outcome.STOPPED, "stopped by the supervisor")
    result = run.output.result or {}  # only from an agent that speaks Claude Code's JSON
    status = reported(result)["api_error_status"]
    failed = run.exit_status != 0 or result.get("is_error") is True
    said = run.output.error_text
    if _account_refused(result, status, said):
        return Verdict(Outcome.ACCOUNT, f"account refused ({status or 'no status'}): "
                                        f"{_short(said or run.output.text)}")
    if status == 429:
        return _rate_limited(run, f"API rate limit (429): {_short(run.output.text)}", now, tz)
    if status == 529 or result.get("api_error_type") == "overloaded_error":
        return Verdict(Outcome.OVERLOADED, f"API overloaded (529): {_short(run.output.text)}")
    if USAGE_LIMIT_TEXT.search(said) or RATE_LIMIT_TEXT.search(said):
        return _rate_limited(run, f"usage limit: {_short(_limit_line(said))}", now, tz)
    if run.timed_out:
        return Verdict(Outcome.TIMEOUT, f"no end within the session timeout "
                                        f"({run.duration_s:.0f}s)")
    if not failed:
        return Verdict(Outcome.OK)
    why = _failure(run)
    if run.duration_s < crash_window_s:
        return Verdict(Outcome.CRASHED, f"crashed {run.duration_s:.1f}s after the start: {why}")
    return Verdict(Outcome.FAILED, why)


def _account_refused(result: dict[str, Any], status: int | None, said: str) -> bool:
    return (status in ACCOUNT_STATUSES or result.get("api_error_type") in ACCOUNT_ERROR_TYPES
            or bool(ACCOUNT_TEXT.search(said)))


def _rate_limited(run: SessionRun, error: str, now: float, tz: dt.tzinfo | None) -> Verdict:
    reset = resets.latest_reset(run.output.rate_limit_events)
    if reset is None:
        reset = resets.parse_reset_time(run.output.error_text, now, tz)
    return Verdict(Outcome.RATE_LIMITED, error, reset)


def _failure(run: SessionRun) -> str:
    if run.exit_status is None:
        return "the agent could not be started"
    if run.exit_status < 0:
        return f"killed by signal {-run.exit_status}"
    detail = _short(run.output.text) or _short(run.stderr_tail.splitlines()[-1]
                                               if run.stderr_tail else "")
    return f"exit status {run.exit_status}" + (f": {detail}" if detail else "")


def _limit_line(text: str) -> str:
    for line in text.splitlines():
        if USAGE_LIMIT_TEXT.search(line) or RATE_LIMIT_TEXT.search(line):
            return line
    return text


def _short(text: str, width: int = 200) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[:width - 3] + "..."


def ledger_end(run: SessionRun, verdict: Verdict) -> SessionEnd:
    """The ledger's record of a finished session: outcome plus what Claude Code reported."""
    return SessionEnd(
        ended_at=run.ended_at, exit_status=run.exit_status, outcome=verdict.outcome.value,
        error=verdict.error, **reported(run.output.result or {}, run.output.started_model),
        limit_events=run.output.rate_limit_events or None,
        last_assistant_message=run.output.last_assistant_text)
