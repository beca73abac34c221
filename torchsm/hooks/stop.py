"""The Stop hook: continue the session with the next work item, or let the agent stop.

The shape of admission (torchsm.supervisor.admission) and the endings: the facts read
once (`read_facts`), one pure decision on them (`decide`), applied once (`answer`). The
facts are read in the transaction that applies the decision (BEGIN IMMEDIATE), as the
claim always was: the item claimed, the request granted against the account's windows and
the restart requested are what the decision saw, whatever other hooks and the supervisor
do meanwhile. What runs the state machine (a bang's cooldown, the account's usage hold)
follows the commit.

The rules, in the order they are asked (CONTRACT.md "Hooks" `stop`, "Safety"):
- bang: more than `hook_burst` Stop runs of the Nova in the window: cool, let it stop;
- not working: the Nova is not `working`;
- supervisor gone: the session's supervisor died: it ends with its item;
- continuation cap: `max_continuations` in this prompt chain;
- no progress: the breaker (torchsm.endings.breaker) over the last K continuations;
- usage limit: the account's windows say stop: every Nova on it holds until the reset;
- usage pacing: the windows say wait: the agent stops, the supervisor paces the next start;
  so too when the cluster's server refuses the grant of an account shared with live hosts
  (another host took the window's last request: torchsm.usage.server_grants);
- no work: the queue holds nothing the Nova may claim;
- otherwise continue: claim the next item, grant its request, block with its task.
Whatever the answer, the item the session was working on is marked done first (unless the
agent finished it), and an agent let stop with work left (not by a bang) asks for a
restart.
"""

from __future__ import annotations

import json
import os
from enum import Enum

from torchsm.clock import format_time
from torchsm.config import Config
from torchsm.hooks.context import HookContext, HookResult, given_by_supervisor, record_run
from torchsm.records import record
from torchsm.safety import is_bang
from torchsm.storage import store
from torchsm.usage import accounts, limits, pacing, server_grants
from torchsm.work import work_queue
from torchsm.work.prompts import continuation_reason

WORKING = "working"


class Rule(str, Enum):
    BANG = "bang"
    NOT_WORKING = "not working"
    SUPERVISOR_GONE = "supervisor gone"
    CONTINUATION_CAP = "continuation cap"
    NO_PROGRESS = "no progress"
    USAGE_LIMIT = "usage limit"
    USAGE_PACING = "usage pacing"
    NO_WORK = "no work"


@record
class StopFacts:
    """What the Stop decision looks at, read in one transaction."""

    nova: store.NovaRow
    message: str | None  # the message the turn ended on (last_assistant_message)
    stop_runs: int  # Stop runs of the Nova within the bang window, this one included
    continued: int  # continuations in the session's current prompt chain
    recent: list[tuple[str | None, int | None]]  # (digest, item) of the latest, newest first
    item_statuses: list[str | None]  # the status of each of those items now
    previous: int | None  # the item the session was working on
    supervisor_gone: int | None  # the pid of the session's supervisor, when it died
    usage: pacing.Verdict  # the account's windows, others' requests in flight counted
    work_left: bool  # an item is claimable once the previous one is done


@record
class StopDecision:
    """One answer to a Stop: `rule` None continues with the next item; any rule lets the
    agent stop, for `why`. `restart`: the reason of the restart to request (work is left)."""

    rule: Rule | None
    why: str | None = None
    restart: str | None = None


CONTINUE = StopDecision(None)
# the server refused the grant (torchsm.usage.server_grants): as a paced verdict, the
# agent stops and the supervisor starts again when the account allows
TAKEN_ELSEWHERE = StopDecision(Rule.USAGE_PACING, f"usage pacing: {server_grants.TAKEN_WHY}",
                               server_grants.TAKEN_WHY)


def decide(facts: StopFacts, config: Config) -> StopDecision:
    """The one answer to the Stop `facts` describe (pure)."""
    if is_bang(facts.stop_runs, config.safety):
        return StopDecision(Rule.BANG, f"bang: {facts.stop_runs} Stop-hook runs within "
                                       f"{config.safety.hook_window_s:g}s")
    stop = _why_not_continue(facts, config) or _usage_says_wait(facts.usage)
    if stop is not None:
        rule, why, restart_reason = stop
        return StopDecision(rule, why, restart_reason if facts.work_left else None)
    if not facts.work_left:
        return StopDecision(Rule.NO_WORK, "no work item to continue with")
    return CONTINUE


def _why_not_continue(facts: StopFacts, config: Config) -> tuple[Rule, str, str] | None:
    """The Nova's own rule that lets the agent stop: (rule, why, why again for a restart)."""
    cap = config.supervisor.max_continuations
    found = None
    if facts.nova.state != WORKING:
        found = Rule.NOT_WORKING, f"{facts.nova.name} is {facts.nova.state}"
    elif facts.supervisor_gone is not None:
        found = Rule.SUPERVISOR_GONE, (
            f"the supervisor of this session (pid {facts.supervisor_gone}) is gone: the "
            "session ends with its item and takes no new work until the next supervisor starts")
    elif facts.continued >= cap:
        found = Rule.CONTINUATION_CAP, (f"continuation cap reached ({facts.continued} of "
                                        f"{cap} in this session)")
    else:
        why = _no_progress(facts, config.safety.no_progress_continuations)
        found = (Rule.NO_PROGRESS, why) if why else None
    return (*found, found[1]) if found else None  # the restart's reason is the same why


def _usage_says_wait(usage: pacing.Verdict) -> tuple[Rule, str, str] | None:
    """At a stop every Nova on the account holds until the reset; pacing only lets the
    agent stop (the supervisor starts the next session when the pace allows)."""
    if usage.kind == "ok":
        return None
    if usage.kind == "stop":
        return Rule.USAGE_LIMIT, usage.why, usage.why
    return Rule.USAGE_PACING, f"usage pacing: {usage.why}", usage.why


def _no_progress(facts: StopFacts, k: int) -> str | None:
    """The no-progress breaker (torchsm.endings.breaker, the supervisor's too) over the
    last K continuations of this session. K = `no_progress_continuations`."""
    from torchsm.endings.breaker import no_progress  # stdlib only: the Stop hook is hot

    return no_progress(continuation_endings(facts), k, "continuations")


def continuation_endings(facts: StopFacts) -> list:
    """How each continuation of the chain ended, newest first: a continued run's digest is
    the message that ended the turn before it, and the current message ends the latest.
    Only the digests of earlier messages are kept: one equal to the current message's
    stands for its text. An item's `done` is left out: this hook marks a continuation's
    item done itself when the turn ends, which says nothing of progress."""
    from torchsm.endings.breaker import Ending

    current = facts.message
    digest = message_digest(current)
    messages = [current] + [current if d == digest else d for d, _ in facts.recent[:-1]]
    return [Ending("ok", None, None, message, status if status != "done" else None)
            for message, status in zip(messages, facts.item_statuses)]


def message_digest(message: str | None) -> str | None:
    if message is None:
        return None
    import zlib

    normalised = " ".join(message.split())
    return f"{zlib.crc32(normalised.encode('utf-8', 'replace')):08x}{len(normalised) % 65536:04x}"


# --- reading the facts -----------------------------------------------------------------

def read_facts(conn, ctx: HookContext, supervisor_gone: int | None) -> StopFacts:
    """The Stop's facts inside the caller's transaction (`supervisor_gone`: read before it,
    from /proc)."""
    k = ctx.config.safety.no_progress_continuations
    runs = 1 + store.count_hook_runs(conn, ctx.nova.id, "stop",
                                     ctx.now - ctx.config.safety.hook_window_s)
    continued, recent = 0, []
    if ctx.session_id is not None:
        continued, recent = store.continuation_chain(conn, ctx.nova.id, ctx.session_id,
                                                     max(k, 1))
    items = [work_queue.load_item(conn, i) if i else None for _, i in recent[:k]]
    message = ctx.payload.get("last_assistant_message")
    previous = _previous_item(ctx, recent)
    return StopFacts(
        ctx.nova, message if isinstance(message, str) else None, runs, continued, recent,
        [i.status.value if i else None for i in items], previous, supervisor_gone,
        limits.verdict(conn, ctx.config, ctx.nova.account, ctx.now, ctx.nova.id),
        work_queue.has_claimable(conn, ctx.nova.name, ctx.now, finishing=previous))


def _previous_item(ctx: HookContext, recent: list[tuple[str | None, int | None]]) -> int | None:
    """The item this session was working on: the last continuation's, else the one the
    supervisor started the session with."""
    if recent and recent[0][1] is not None:
        return recent[0][1]
    return given_by_supervisor(ctx, "TORCHSM_ITEM")


def _supervisor_gone() -> int | None:
    """The pid of this session's supervisor when it died (its agent outlives it only to
    end its session: torchsm.agent.keeper); None while it lives or when nobody supervises."""
    mark = os.environ.get("TORCHSM_SUPERVISOR")
    if not mark:
        return None
    from torchsm.agent.orphans import supervisor_gone

    return supervisor_gone(mark)


# --- applying the decision ---------------------------------------------------------------

def answer(ctx: HookContext) -> HookResult:
    """Read the facts, decide, apply: one write transaction, then the state machine's part
    (a bang's cooldown, the account's hold)."""
    gone = _supervisor_gone()
    facts, decision, result, members = ctx.db.write(lambda conn: _settle(conn, ctx, gone))
    if decision.rule is Rule.BANG:
        return _cool(ctx, decision.why)
    if decision.rule is Rule.USAGE_LIMIT:
        limits.hold(ctx.home, ctx.config, members, facts.usage, ctx.now)
    return result


def _settle(conn, ctx: HookContext, gone: int | None):
    """Inside one transaction: the facts, the decision, the previous item done (its
    episode remembered), then the decision's own write, the hook run recorded with it (a
    bang's is recorded after its cooldown, which words it)."""
    facts = read_facts(conn, ctx, gone)
    decision = decide(facts, ctx.config)
    if decision is CONTINUE and not server_grants.granted(conn, ctx.config, ctx.nova, ctx.now):
        decision = TAKEN_ELSEWHERE
    if facts.previous is not None and work_queue.finish_claimed_by(
            conn, facts.previous, ctx.nova.name, ctx.now):
        _remember_episode(conn, ctx, facts)
    if decision.rule is Rule.BANG:
        _answered_with_a_cooldown(conn, ctx)
        return facts, decision, None, []
    result = _continued(conn, ctx, facts) if decision is CONTINUE else _allowed(conn, ctx, decision)
    record_run(conn, ctx, result)
    members = (store.novas_on_account(conn, ctx.nova.account)
               if decision.rule is Rule.USAGE_LIMIT else [])
    return facts, decision, result, members


def _continued(conn, ctx: HookContext, facts: StopFacts) -> HookResult:
    """The next item claimed, its request granted, its task worded: in the transaction
    that records the run, so a failure in any leaves nothing claimed, and a claim is never
    left unrecorded."""
    item = work_queue.claim_next_in(conn, ctx.nova.name, ctx.config.queue.lease_s, ctx.now)
    accounts.grant(conn, ctx.nova.account, ctx.nova.id, ctx.now)
    cap = ctx.config.supervisor.max_continuations
    return HookResult("continued", stdout=json.dumps({
        "decision": "block", "reason": continuation_reason(item, nova=ctx.nova.name)}),
        item_id=item.id, detail=f"continuation {facts.continued + 1} of {cap}",
        digest=message_digest(facts.message), recorded=True)


def _allowed(conn, ctx: HookContext, decision: StopDecision) -> HookResult:
    if decision.rule is Rule.NO_WORK:
        work_queue.requeue_expired(conn, ctx.now)  # an idle moment: write down the dead ones
    if decision.restart is not None:
        store.request_restart(conn, ctx.nova.id, ctx.now, decision.restart)
    return HookResult("allowed", detail=decision.why + (
        "; restart requested" if decision.restart is not None else ""), recorded=True)


def _remember_episode(conn, ctx: HookContext, facts: StopFacts) -> None:
    """The finished item's episode, with the message the turn ended on."""
    from torchsm.dreams import memory

    memory.remember_episode(conn, ctx.config, ctx.nova.name,
                            work_queue.load_item(conn, facts.previous), facts.message, ctx.now)


def _answered_with_a_cooldown(conn, ctx: HookContext) -> None:
    """A bang cools the Nova whatever else happened: its session counts as answered, so
    its end does not cool the Nova a second time for the same trouble."""
    from torchsm.endings import answers
    from torchsm.endings.responses import Kind

    session = given_by_supervisor(ctx, "TORCHSM_SESSION")
    answers.claim(conn, session, ctx.nova.id, Kind.COOL, ctx.now)


def _cool(ctx: HookContext, why: str) -> HookResult:
    from torchsm import novas

    cooled = novas.safety_cool(ctx.home, ctx.config, ctx.nova.name, reason=why, bang=True,
                               now=ctx.now)
    until = format_time(cooled.until)
    return HookResult("bang", detail=f"{why}; {cooled.target} until {until}",
                      warning=f"{ctx.nova.name}: {why}: {cooled.target} until {until}; "
                              "the agent may stop")
