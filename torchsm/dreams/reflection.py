"""A dream's phase 1: optimization reflection. What the experience means for the Nova.

Where its sessions, cost and usage went; failures that recur across items or sessions
(one cause, worth fixing once); items that keep failing or wait far longer than the rest;
senders that make most of the noise; what caused the cooldowns; how close it runs to its
budgets and usage windows. Each rule is a threshold below, each finding an `Insight` with
its evidence. Pure, like phase 0.
"""

from __future__ import annotations

from torchsm.config import Config, usage_for
from torchsm.dreams.experience import Experience, Item, RestGroup
from torchsm.dreams.patterns import (EVIDENCE_IDS, Insight, digest, duration, error_evidence,
                                    id_list, plural, quote, sender_name, span_evidence, when)

RECURRING_ITEMS = 2  # the same error on this many items is one failure, not bad luck
RECURRING_SESSIONS = 3  # ... or in this many sessions
WAIT_FACTOR = 4.0  # an item waits too long at this many times the usual wait ...
WAIT_MIN_S = 3600.0  # ... and at least this long
WAIT_SAMPLE = 3  # the usual wait needs this many items to go by
NOISY_MIN = 5  # a sender is noisy from this many signals and messages in the span ...
NOISY_SHARE = 0.5  # ... that make at least this share of all of them
RESTS_MIN = 2  # rests of one cause worth a word
NEAR = 0.8  # a budget is near from this share of it
TOP_ITEMS = 3  # the items that took the most sessions, in `spend`
# rests that say the Nova runs too hot (a longer rest helps); not limits or a person's
OVERHEATING = ("bang", "no progress", "failed session", "session budget", "cost budget")
CAUSE_TEXT = {
    "bang": "Bangs (Stop-hook bursts)", "no progress": "The no-progress breaker",
    "session budget": "The hourly session budget", "cost budget": "The daily cost budget",
    "usage limit": "Usage limits", "overloaded": "API overloads",
    "account": "Account refusals", "failed session": "Failed sessions",
    "manual": "Requests without a reason (a person's)", "other": "Other reasons",
}


def reflect(exp: Experience, config: Config) -> list[Insight]:
    """Phase 1: what the experience means (none when nothing happened)."""
    if exp.empty:
        return []
    found = [spend(exp)] if exp.sessions.count else []
    recurring = [g for g in exp.errors
                 if len(g.items) >= RECURRING_ITEMS or len(g.sessions) >= RECURRING_SESSIONS]
    found += [recurring_failure(g) for g in recurring]
    # an item a recurring failure hit is evidence of that one, not a finding of its own
    covered = {item for g in recurring for item in g.items}
    found += [failing_item(exp, item) for item in _failing(exp) if item.id not in covered]
    found += waiting_items(exp)
    found += noisy_senders(exp)
    total = sum(g.cools + g.meditations for g in exp.history.rests)
    found += [rest_cause(exp, g, total) for g in exp.history.rests
              if g.cools + g.meditations >= RESTS_MIN]
    found += budgets(exp, config)
    return found


def spend(exp: Experience) -> Insight:
    s = exp.sessions
    kinds = ", ".join(f"{kind} {n} (${cost:.2f})" for kind, (n, cost) in
                      sorted(s.by_kind.items(), key=lambda kv: (-kv[1][0], kv[0])))
    top = sorted(s.per_item.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:TOP_ITEMS]
    text = (f"{exp.nova} ran {plural(s.count, 'session')} for ${s.cost:.2f} "
            f"from {when(s.first_at)} to {when(s.last_at)}, by kind: {kinds}")
    if top and top[0][1][0] > 1:
        item, (n, cost, _) = top[0]
        text += f"; item {item} took the most: {plural(n, 'session')}, ${cost:.2f}"
    evidence = {"sessions": s.count, "cost_usd": s.cost, "turns": s.turns,
                "by_kind": {k: {"sessions": n, "cost_usd": c} for k, (n, c) in s.by_kind.items()},
                "top_items": [{"item": item, "sessions": n, "cost_usd": cost,
                               "session_ids": list(ids[:EVIDENCE_IDS])}
                              for item, (n, cost, ids) in top],
                "session_ids": list(s.ids or ()), **span_evidence(s.first_at, s.last_at)}
    return Insight(1, "spend", "spend", text + ".", evidence, 40)


def recurring_failure(group) -> Insight:
    where = []
    if group.items:
        where.append(f"{plural(len(group.items), 'item')} ({id_list(group.items)})")
    if group.sessions:
        where.append(f"{plural(len(group.sessions), 'session')} ({id_list(group.sessions)})")
    text = (f"The same failure {quote(group.text)} hit {' and '.join(where)} from "
            f"{when(group.first)} to {when(group.last)}: one cause, worth fixing once.")
    return Insight(1, "recurring-failure", f"failure:{group.key}", text,
                   error_evidence(group), 90)


def _failing(exp: Experience) -> list[Item]:
    """Items that failed in the span (failed, dead) and open ones failing again."""
    seen, items = set(), []
    for item in exp.queue.failed + exp.queue.retrying:
        if item.id not in seen:
            seen.add(item.id)
            items.append(item)
    return items


def failing_item(exp: Experience, item: Item) -> Insight:
    what = f"Item {item.id} ({quote(item.text, 60)})"
    if item.status == "dead":
        text = f"{what} died after {item.attempts} of {item.max_attempts} attempts"
    elif item.status == "failed":
        text = f"{what} was failed after {plural(item.attempts, 'attempt')}"
    else:
        text = f"{what} has failed {item.attempts} of {item.max_attempts} attempts so far"
    text += f"; its last error: {quote(item.error)}." if item.error else "."
    n, cost, ids = exp.sessions.per_item.get(item.id, (0, 0.0, ()))
    evidence = {"item": item.id, "text": item.text, "status": item.status,
                "attempts": item.attempts,
                "max_attempts": item.max_attempts, "error": item.error,
                "sessions": list(ids[:EVIDENCE_IDS]), "session_count": n, "cost_usd": cost,
                "created_at": when(item.created_at),
                "finished_at": when(item.finished_at) if item.finished_at else None}
    weight = 80 if item.status in ("dead", "failed") else 75
    return Insight(1, "failing-item", f"item:{item.id}:failing", text, evidence, weight)


def usual_wait(exp: Experience) -> tuple[float, str, int] | None:
    """The usual wait of an item: the median time items done in the span took, else the
    median age of the open ones; (seconds, basis, sample) or None when too few."""
    q = exp.queue
    done = q.finished.get("done", 0)
    if done >= WAIT_SAMPLE and q.done_median_s is not None:
        return q.done_median_s, "done", done
    if q.open_count >= WAIT_SAMPLE and q.open_median_age_s is not None:
        return q.open_median_age_s, "open", q.open_count
    return None


def waiting_items(exp: Experience) -> list[Insight]:
    usual = usual_wait(exp)
    if usual is None:
        return []
    usual_s, basis, sample = usual
    bar = max(WAIT_FACTOR * usual_s, WAIT_MIN_S)
    found = []
    for item in exp.queue.oldest:
        age = exp.now - item.created_at
        if age < bar:
            break  # the oldest first: the rest waited less
        factor = age / usual_s if usual_s > 0 else None
        times = f", {factor:.0f}x the usual {duration(usual_s)}" if factor else ""
        text = (f"Item {item.id} ({quote(item.text, 60)}, {item.priority}) has waited "
                f"{duration(age)} since {when(item.created_at)}{times} "
                f"(the median of {sample} {basis} items).")
        evidence = {"item": item.id, "text": item.text, "priority": item.priority,
                    "status": item.status,
                    "created_at": when(item.created_at), "age_s": round(age, 3),
                    "usual_s": round(usual_s, 3), "basis": basis, "sample": sample,
                    "factor": round(factor, 1) if factor else None}
        found.append(Insight(1, "waiting-item", f"item:{item.id}:waiting", text, evidence, 60))
    return found


def noisy_senders(exp: Experience) -> list[Insight]:
    senders = sorted(set(exp.signals) | set(exp.messages))
    total = sum(f.count for f in exp.signals.values()) + sum(
        f.count for f in exp.messages.values())
    found = []
    for sender in senders:
        signals, messages = exp.signals.get(sender), exp.messages.get(sender)
        n = (signals.count if signals else 0) + (messages.count if messages else 0)
        if not sender or n < NOISY_MIN or n < NOISY_SHARE * total:
            continue
        low = signals.low if signals else 0
        first = min(f.first for f in (signals, messages) if f)
        last = max(f.last for f in (signals, messages) if f)
        text = (f"Sender {sender_name(sender)} sent {n} of the {total} wake signals and "
                f"messages from {when(first)} to {when(last)}"
                + (f", {low} of them low or background." if low else "."))
        evidence = {"sender": sender, "count": n, "of": total, "share": round(n / total, 3),
                    "wake_signals": list(signals.ids[:EVIDENCE_IDS]) if signals else [],
                    "messages": list(messages.ids[:EVIDENCE_IDS]) if messages else [],
                    "low": low, **span_evidence(first, last)}
        found.append(Insight(1, "noisy-sender", f"sender:{slug(sender)}", text, evidence, 50))
    return found


def rest_cause(exp: Experience, group: RestGroup, total: int) -> Insight:
    n = group.cools + group.meditations
    text = (f"{CAUSE_TEXT.get(group.cause, group.cause)} caused {n} of the {total} cooldowns "
            f"and meditations from {when(group.first)} to {when(group.last)} "
            f"(history {id_list(group.ids)}).")
    evidence = {"cause": group.cause, "cooldowns": group.cools,
                "meditations": group.meditations, "of": total,
                "history": list(group.ids[:EVIDENCE_IDS]), "reasons": list(group.reasons),
                **span_evidence(group.first, group.last)}
    if group.cause == "bang":
        evidence["bangs"] = [run_id for run_id, _ in exp.hooks.bangs][:EVIDENCE_IDS]
    weight = 70 if group.cause in OVERHEATING else 45
    return Insight(1, "cooldown-cause", f"rests:{slug(group.cause)}", text, evidence, weight)


def budgets(exp: Experience, config: Config) -> list[Insight]:
    found = []
    peak = busiest_hour(exp.sessions.starts)
    limit = config.supervisor.max_sessions_per_hour
    if peak and len(peak) >= NEAR * limit:
        found.append(_session_budget(exp, peak, limit))
    b = exp.budget
    if b.cost_limit > 0 and b.cost_24h >= NEAR * b.cost_limit:
        found.append(_cost_budget(exp))
    usage = usage_for(config, b.account)
    for w in b.windows:
        live = w.resets_at is None or w.resets_at > exp.now
        if live and ((w.utilization or 0) >= usage.slow_utilization or w.status == "rejected"):
            found.append(_window(exp, w, usage))
    return found


def busiest_hour(starts: tuple[tuple[float, int], ...]) -> list[tuple[float, int]]:
    """The most sessions that started within one sliding hour (oldest first), O(n)."""
    best, first, best_first, best_last = 0, 0, 0, -1
    for last in range(len(starts)):
        while starts[last][0] - starts[first][0] >= 3600:
            first += 1
        if last - first + 1 > best:
            best, best_first, best_last = last - first + 1, first, last
    return list(starts[best_first:best_last + 1])


def _session_budget(exp: Experience, peak: list, limit: int) -> Insight:
    start = peak[0][0]
    text = (f"At its busiest {exp.nova} started {len(peak)} sessions within one hour "
            f"(from {when(start)}), {len(peak) / limit:.0%} of max_sessions_per_hour "
            f"{limit}.")
    evidence = {"peak": len(peak), "limit": limit, "share": round(len(peak) / limit, 3),
                "sessions": [i for _, i in peak][:EVIDENCE_IDS],
                "last_hour": exp.budget.sessions_last_hour,
                **span_evidence(start, peak[-1][0])}
    return Insight(1, "budget-sessions", "budget:sessions", text, evidence, 70)


def _cost_budget(exp: Experience) -> Insight:
    b = exp.budget
    share = b.cost_24h / b.cost_limit
    text = (f"Account {b.account} reported ${b.cost_24h:.2f} of its ${b.cost_limit:.2f} daily "
            f"cost budget in the 24 hours to {when(exp.now)} ({share:.0%}).")
    evidence = {"account": b.account, "cost_usd": b.cost_24h, "limit_usd": b.cost_limit,
                "share": round(share, 3), **span_evidence(exp.now - 86400, exp.now)}
    return Insight(1, "budget-cost", f"budget:cost:{b.account}", text, evidence, 75)


def _window(exp: Experience, w, usage) -> Insight:
    level = f"{w.utilization:.0%}" if w.utilization is not None else w.status
    resets = f"; it resets at {when(w.resets_at)}" if w.resets_at else ""
    text = (f"Account {exp.budget.account}'s {w.window} window is at {level} (slow from "
            f"{usage.slow_utilization:.0%}, stop at {usage.stop_utilization:.0%}), as "
            f"{w.nova or 'a Nova'} heard at {when(w.updated_at)}{resets}.")
    evidence = {"account": exp.budget.account, "window": w.window,
                "utilization": w.utilization, "status": w.status,
                "resets_at": when(w.resets_at) if w.resets_at else None,
                "updated_at": when(w.updated_at), "heard_from": w.nova,
                "slow": usage.slow_utilization, "stop": usage.stop_utilization}
    return Insight(1, "usage-window", f"window:{exp.budget.account}:{slug(w.window)}", text,
                   evidence, 70)


def slug(text: str) -> str:
    """`text` fit for a key: as it is when short and plain, else a digest."""
    plain = text.replace(" ", "-")
    return plain if len(plain) <= 40 and plain.isprintable() and ":" not in plain else digest(text)
