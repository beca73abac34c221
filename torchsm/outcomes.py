"""How a session ended: the words stored in `sessions.outcome`, and the groups every reader
of that column counts by (stability, refusals, a dream's failures, the alerts).

One vocabulary, so that a reader cannot keep an older list of its own: metrics once counted
`billing` and `auth` as refusals after they had become `account_error`, and missed every
account error since.
"""

from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    """How a session (or a turn) ended."""

    OK = "ok"
    FAILED = "failed"
    CRASHED = "crashed"  # failed within the crash window of its start: a bang
    TIMEOUT = "timeout"
    STOPPED = "stopped"  # ended by the supervisor shutting down
    RATE_LIMITED = "rate_limited"  # a 429 or a usage-limit message
    OVERLOADED = "overloaded"  # a 529: a short backoff, not a limit
    ACCOUNT = "account_error"  # billing, authentication, permission: a person must look


# the agent's own failures: what the stability of a Nova counts
OWN_FAILURES = (Outcome.FAILED, Outcome.CRASHED, Outcome.TIMEOUT)
# what the account answers for: a limit, or the account itself refused
ACCOUNT_REFUSALS = (Outcome.RATE_LIMITED, Outcome.ACCOUNT)
# every request the API refused, an overloaded server included
REFUSALS = (*ACCOUNT_REFUSALS, Outcome.OVERLOADED)
# every session that did not end well of itself (the supervisor stopping it is not one)
UNSUCCESSFUL = (*OWN_FAILURES, *REFUSALS)
# the HTTP statuses of a refusal, as `sessions.api_error_status` stores them
REFUSED_STATUSES = (429, 529)


def sql_list(outcomes) -> str:
    """`('a', 'b')`: a group as an SQL literal list, so that a partial index or the
    planner sees constants (the values are this module's own words, never input)."""
    return "(" + ", ".join(f"'{o.value}'" for o in outcomes) + ")"
