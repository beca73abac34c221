"""Admission: whether a Nova's next session may start now; if not, which rule holds it
back, why in words, and until when.

The facts are read in one read transaction (`read_facts`); the decision is pure
(`why_not`), in the manner of pacing.verdict. The supervisor asks before it waits, and
asks again in the transaction that records the start, with the same function on facts
read there: nothing that changed in between (a person's cooldown, a hold, a move to an
account at its limit, a budget another Nova of the account spent) lets a session through.
What a refusal does (cool the Nova for a spent budget, hold the account at its limit) is
the caller's: deciding never acts.

The rules, in the order they are asked:
- waiting: the Nova cools or meditates until a time;
- held: a hold only a person lifts (an account error, or a limit with auto_resume off);
- not working: the Nova dreams or compacts (the loop resumes it first);
- usage limit: the account's windows say stop (pacing.verdict);
- session budget: `max_sessions_per_hour` in any sliding hour;
- cost budget: the account's `max_cost_usd_per_day` in any sliding 24 hours;
- overload: a 529's short backoff (the loop remembers it, the facts carry it);
- usage pacing: the windows spread what is left of them until the reset;
- rhythm: the floor of the gap for a critical wake, the whole rest for other work;
- quiet hours: ordinary work only (a due wake had them applied when it was sent);
- cut off: the account is shared through the cluster and its server has not answered
  for `[cluster] lease_s` (fail closed: the other hosts' holds and starts are unknown);
- running sessions: the account's `max_running_sessions` running at once;
- start stagger: a session of the account started less than `start_stagger_s` ago, or
  the next slot is another Nova's turn (`stagger_slot`).
On a cluster the other hosts' running sessions and starts count too (torchsm.cluster.accounts
stores them in `account_peers`, read with the other facts).
The last three are the account's and hold every kind of start, a critical wake's too: many
Novas of one account that start together (at a reset, at `torchsm up`) meet "server is
temporarily limiting requests". They come last, so a refusal names the firmer time of
the other rules first. Being asked in the transaction that records the start (BEGIN
IMMEDIATE), the last place under the cap and the next slot of the stagger go to one
supervisor only; the others are refused and look again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from torchsm import novas, personalities
from torchsm.agent import orphans
from torchsm.clock import format_time
from torchsm.config import Config, cost_limit_for, usage_for
from torchsm.machine import WAITING_STATES, State
from torchsm.storage import store
from torchsm.supervisor import rhythm
from torchsm.usage import accounts, budget, ledger, limits, pacing

WAITING_VALUES = tuple(s.value for s in WAITING_STATES)
# No time ends a full cap (a session ends when it ends): how soon a Nova looks again.
CAP_LOOK_AGAIN_S = 2.0


class Rule(str, Enum):
    WAITING = "waiting"
    HELD = "held"
    NOT_WORKING = "not working"
    USAGE_LIMIT = "usage limit"
    SESSION_BUDGET = "session budget"
    COST_BUDGET = "cost budget"
    OVERLOAD = "overload"
    USAGE_PACING = "usage pacing"
    RHYTHM = "rhythm"
    QUIET_HOURS = "quiet hours"
    CUT_OFF = "cut off"
    RUNNING_SESSIONS = "running sessions"
    START_STAGGER = "start stagger"

    @property
    def yields_to_critical(self) -> bool:
        """Whether a critical wake may start before this rule's time (it still waits for
        the floor of the rhythm)."""
        return self in (Rule.RHYTHM, Rule.QUIET_HOURS)


@dataclass(frozen=True)
class Refusal:
    rule: Rule
    why: str
    until: float | None  # None: no time ends it (a person must act)


@dataclass(frozen=True)
class Request:
    """What asks to start, and what only the asking loop knows."""

    kind: str  # what the session is for: wake | restart | item
    critical: bool  # a critical wake
    load_per_core: float | None = None  # one reading for the check and the record
    not_before: float = 0.0  # an overload's backoff


@dataclass(frozen=True)
class Facts:
    """What admission decides on, read in one transaction."""

    nova: store.NovaRow
    kind: str  # what the session is for: wake | restart | item
    critical: bool  # a critical wake: it waits for the floor of the rhythm only
    auto_resume: bool  # the account's [usage] auto_resume
    usage: pacing.Verdict  # the account's windows, others' requests in flight counted
    starts: tuple[float, ...]  # the Nova's session starts in the last hour
    session_limit: int
    costs: tuple[tuple[float, float], ...]  # (when, usd) on the account in the last 24 h
    cost_limit: float  # 0: no cost budget
    gap: rhythm.Gap
    last_end: float | None  # when the Nova's last session ended
    quiet_hours: str
    not_before: float = 0.0  # an overload's backoff: no start before this
    running_on_account: int = 0  # the account's sessions whose agent has not ended
    running_cap: int = 0  # the account's max_running_sessions (0: no cap)
    others_starts: tuple[float, ...] = ()  # each other starter's latest start on the account
    stagger_s: float = 0.0  # the account's start_stagger_s (0: off)
    cut_off_since: float | None = None  # a shared account whose server is silent since
    shares_account: bool = True  # another Nova, here or on another host, may start on it


def check(conn, config: Config, name: str, request: Request,
          now: float) -> tuple[Facts, Refusal | None]:
    """The facts inside the caller's transaction, and what admission says on them."""
    facts = read_facts(conn, config, name, request, now)
    return facts, why_not(facts, now)


def read_facts(conn, config: Config, name: str, request: Request, now: float) -> Facts:
    """The facts for a start of Nova `name` at `now`, inside the caller's transaction."""
    nova = store.nova_named(conn, name)
    profile = personalities.get_personality(nova.personality, config.personalities)
    gap = rhythm.gap(profile, ledger.count(conn, nova.id), request.load_per_core,
                     config.supervisor.load_stretch_above)
    account = usage_for(config, nova.account)
    peers = accounts.load_peers(conn, nova.account) if config.cluster.enabled else None
    return Facts(
        nova, request.kind, request.critical, account.auto_resume,
        limits.verdict(conn, config, nova.account, now, nova.id),
        tuple(ledger.starts_since(conn, nova.id, now - budget.WINDOW_S)),
        config.supervisor.max_sessions_per_hour,
        tuple(ledger.costs_since(conn, nova.account, now - budget.COST_WINDOW_S)),
        cost_limit_for(config, nova.account), gap, ledger.last_end(conn, nova.id),
        config.wake.quiet_hours, request.not_before,
        running_agents(conn, nova.account) + (peers.running if peers else 0),
        account.max_running_sessions,
        _others_starts(conn, nova, peers, now),
        account.start_stagger_s, cut_off_since(peers, now, config.cluster.lease_s),
        peers is not None or len(store.novas_on_account(conn, nova.account)) > 1)


def cut_off_since(peers: accounts.Peers | None, now: float, lease_s: float) -> float | None:
    """Since when the cluster's server has not answered for a shared account, once that
    is longer than the lease; None: not shared, or answered within it."""
    if peers is None or now - peers.answered_at <= lease_s:
        return None
    return peers.answered_at


def _others_starts(conn, nova: store.NovaRow, peers: accounts.Peers | None,
                   now: float) -> tuple[float, ...]:
    """The latest start of each other Nova of the account here in the last hour, and the
    other hosts' latest (one starter: `account_peers` holds their latest only)."""
    found = ledger.latest_starts_of_others(conn, nova.account, nova.id, now - budget.WINDOW_S)
    if peers is not None and peers.last_start is not None:
        found.append(peers.last_start)
    return tuple(found)


def running_agents(conn, account: str) -> int:
    """The account's sessions still `running` whose agent has not ended: one not launched
    yet counts (its start is recorded first), one whose agent is gone does not (its
    supervisor is settling it, or died and is cleaned up after: torchsm.supervisor.recovery)."""
    return sum(1 for _, pid, ticks in ledger.running_on_account(conn, account)
               if pid is None or ticks is None or orphans.alive_as_recorded(pid, ticks))


def why_not(facts: Facts, now: float) -> Refusal | None:
    """Why the session may not start at `now`; None: it may."""
    for rule in _RULES:
        refusal = rule(facts, now)
        if refusal is not None:
            return refusal
    return None


# --- the Nova's own state ----------------------------------------------------------------

def waiting(nova: store.NovaRow, now: float) -> bool:
    """Cooling or meditating until a time still ahead."""
    return nova.state in WAITING_VALUES and nova.until is not None and nova.until > now


def held_for_a_person(nova: store.NovaRow, auto_resume: bool) -> bool:
    """A hold whose wait is over that only a person lifts: an account error, or a usage
    limit with `auto_resume = false`."""
    return (bool(nova.limit_hold) and nova.state in WAITING_VALUES
            and (novas.held_for_a_person(nova.limit_hold) or not auto_resume))


def waiting_why(state: str, until: float | None, reason: str | None) -> str:
    return f"{state} until {format_time(until)}" + (f" ({reason})" if reason else "")


def held_why(nova: store.NovaRow) -> str:
    what = ("held" if novas.held_for_a_person(nova.limit_hold)
            else f"held for a usage limit ({nova.limit_hold}); auto_resume is off")
    return f"{what}: `torchsm transition {nova.name} work` resumes it"


def _waiting(facts: Facts, now: float) -> Refusal | None:
    nova = facts.nova
    if not waiting(nova, now):
        return None
    return Refusal(Rule.WAITING, waiting_why(nova.state, nova.until, nova.reason), nova.until)


def _held(facts: Facts, now: float) -> Refusal | None:
    if not held_for_a_person(facts.nova, facts.auto_resume):
        return None
    return Refusal(Rule.HELD, held_why(facts.nova), None)


def _not_working(facts: Facts, now: float) -> Refusal | None:
    if facts.nova.state == State.WORKING.value:
        return None
    return Refusal(Rule.NOT_WORKING, f"{facts.nova.name} is {facts.nova.state}", now)


# --- the account's and the Nova's budgets -------------------------------------------------

def _usage_limit(facts: Facts, now: float) -> Refusal | None:
    if facts.usage.kind != "stop":
        return None
    return Refusal(Rule.USAGE_LIMIT, facts.usage.why, facts.usage.until)


def _session_budget(facts: Facts, now: float) -> Refusal | None:
    frees_at = budget.window_frees_at(facts.starts, now, facts.session_limit)
    if frees_at is None:
        return None
    recent = budget.sessions_in_window(facts.starts, now)
    return Refusal(Rule.SESSION_BUDGET,
                   f"session budget spent: {recent} of {facts.session_limit} in the last "
                   f"hour; room again at {format_time(frees_at)}", frees_at)


def _cost_budget(facts: Facts, now: float) -> Refusal | None:
    frees_at = budget.cost_frees_at(facts.costs, now, facts.cost_limit)
    if frees_at is None:
        return None
    spent = budget.cost_in_window(facts.costs, now)
    return Refusal(Rule.COST_BUDGET,
                   f"cost budget spent: ${spent:.2f} of ${facts.cost_limit:.2f} in the last "
                   f"24 h; room again at {format_time(frees_at)}", frees_at)


# --- the pace --------------------------------------------------------------------------------

def _overload(facts: Facts, now: float) -> Refusal | None:
    if facts.not_before <= now:
        return None
    return Refusal(Rule.OVERLOAD, f"API overloaded: backing off until "
                                  f"{format_time(facts.not_before)}", facts.not_before)


def _usage_pacing(facts: Facts, now: float) -> Refusal | None:
    if facts.usage.kind != "pace":
        return None
    return Refusal(Rule.USAGE_PACING, f"usage pacing: {facts.usage.why}", facts.usage.until)


def _rhythm(facts: Facts, now: float) -> Refusal | None:
    if facts.last_end is None:
        return None
    wait_s = facts.gap.floor_s if facts.critical else facts.gap.rest_s
    if facts.last_end + wait_s <= now:
        return None
    return Refusal(Rule.RHYTHM, f"rhythm: {facts.gap.why}", facts.last_end + wait_s)


def _quiet_hours(facts: Facts, now: float) -> Refusal | None:
    if facts.kind == "wake":  # a due signal has had quiet hours applied already
        return None
    end = rhythm.after_quiet_hours(now, facts.quiet_hours)
    if end is None:
        return None
    return Refusal(Rule.QUIET_HOURS,
                   f"quiet hours ({facts.quiet_hours}) until {format_time(end)}", end)


# --- the account's Novas together -----------------------------------------------------------

def _cut_off(facts: Facts, now: float) -> Refusal | None:
    if facts.cut_off_since is None:
        return None
    return Refusal(Rule.CUT_OFF,
                   f"cut off from the cluster server since {format_time(facts.cut_off_since)}"
                   f": no new session of shared account {facts.nova.account}",
                   now + CAP_LOOK_AGAIN_S)


def _running_sessions(facts: Facts, now: float) -> Refusal | None:
    if not facts.running_cap or facts.running_on_account < facts.running_cap:
        return None
    # the words hold no time: the supervisor says them again only when they change
    return Refusal(Rule.RUNNING_SESSIONS,
                   f"{facts.running_on_account} of {facts.running_cap} sessions of account "
                   f"{facts.nova.account} running (max_running_sessions)",
                   now + CAP_LOOK_AGAIN_S)


def stagger_slot(own: float | None, others: tuple[float, ...], stagger_s: float,
                 now: float) -> tuple[float, int] | None:
    """When this Nova's turn under the stagger comes, and how many starters go before
    it; None: no start of the account is near.

    Every start of the account counts, the Nova's own too: counting only the others'
    let a Nova whose sessions are shorter than the stagger start back to back and hold
    the others off for good. The slots after the account's latest start go in the order
    of the starters' own latest starts, oldest first: the k-th slot (one stagger apart)
    is this Nova's when k-1 starters started before it did. A starter that did not take
    its turn no longer reserves one once its latest start is older than one stagger per
    starter (plus one): a Nova alone at work pays for its idle siblings for a while only.
    A Nova that never started has no one ahead of it (the others cannot know it waits:
    it meets the rank-0 Nova at the next slot, the first to record its start wins, and
    from then on it is in the turns). Deterministic on the facts, so every
    supervisor (and every host, through the others' latest start) agrees on the order
    without asking one another."""
    starts = others + (() if own is None else (own,))
    if not stagger_s or not starts:
        return None
    turns_from = now - stagger_s * (len(starts) + 1)
    ahead = 0 if own is None else sum(1 for s in others if turns_from < s < own)
    slot = max(starts) + stagger_s * (1 + ahead)
    return (slot, ahead) if slot > now else None


def _start_stagger(facts: Facts, now: float) -> Refusal | None:
    # a Nova alone on its account takes no turns: its rhythm alone spaces its starts
    own = max(facts.starts, default=None) if facts.shares_account else None
    turn = stagger_slot(own, facts.others_starts, facts.stagger_s, now)
    if turn is None:
        return None
    slot, ahead = turn
    last = max(facts.others_starts + facts.starts)
    first = f"; {ahead} that started before this Nova first" if ahead else ""
    return Refusal(Rule.START_STAGGER,
                   f"start stagger: a session of account {facts.nova.account} started at "
                   f"{format_time(last)}; the next starts {facts.stagger_s:g} s later"
                   f"{first}, at {format_time(slot)}", slot)


_RULES = (_waiting, _held, _not_working, _usage_limit, _session_budget, _cost_budget,
          _overload, _usage_pacing, _rhythm, _quiet_hours, _cut_off, _running_sessions,
          _start_stagger)
