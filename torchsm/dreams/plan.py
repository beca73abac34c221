"""A dream's phase 2: planning and consolidation.

`propose` turns phase 1's findings into concrete proposals, each with its `action` as
data: investigate a failure that recurs (once, rather than retrying every item it hits),
retry an item whose failure may pass, ask another Nova to take over one, give up on one,
raise one that waits too long, lengthen the Nova's rest, lower a noisy sender's weight.
Pure, like the phases before it.

`apply` runs inside the transaction that writes the dream. It remembers the findings
worth keeping (REMEMBERED: memory kind `insight`, key = the insight's, so the same finding
in a later dream strengthens the memory instead of adding one), consolidates the Nova's
memory (merge duplicates, age out stale episodes, stay within [memory] max_per_nova), and
with [dreams] propose_work adds the proposals an agent can carry out (investigate, retry)
as `low` work items tagged with the dream (text `[dream ID] ...`, source key
`dream:ID:KEY`): at most [dreams] max_work_per_day per Nova in any 24 hours, and never one
whose item from an earlier dream still waits.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from torchsm.config import Config
from torchsm.dreams.experience import DAY_S, Experience, error_key
from torchsm.dreams.patterns import Insight, duration, id_list, plural, quote
from torchsm.dreams.reflection import OVERHEATING, slug
from torchsm.errors import UnknownPersonality

# findings a Nova keeps in memory; the others describe one span only
REMEMBERED = ("recurring-failure", "failing-item", "cooldown-cause", "noisy-sender",
              "budget-sessions", "budget-cost", "usage-window")
# a failure that says little about the item: another try may pass
TRANSIENT = re.compile(r"time[d ]*out|overloaded|\b529\b|lease expired|rate.?limit|\b429\b|"
                       r"crashed|connection (reset|refused)", re.I)
TIERS = ("critical", "high", "medium", "low", "background")  # highest first
DREAM_TAG = "dream:"  # work items a dream added: source_key dream:ID:KEY
WORK_TEXT_CHARS = 1000


def propose(exp: Experience, config: Config, found: list[Insight],
            dream_id: int) -> list[Insight]:
    """Phase 2's proposals from the findings of phases 0 and 1."""
    def of(kind: str) -> list[Insight]:
        return [i for i in found if i.kind == kind]

    recurring = {i.key.split(":", 1)[1] for i in of("recurring-failure")}
    proposals = [investigate(i, dream_id) for i in of("recurring-failure")]
    proposals += [p for i in of("failing-item")
                  if (p := for_failing_item(exp, i, recurring, dream_id)) is not None]
    proposals += [p for i in of("waiting-item") if (p := reprioritise(i)) is not None]
    rest = lengthen_rest(exp, config, found)
    proposals += [rest] if rest is not None else []
    proposals += [lower_sender(config, i) for i in of("noisy-sender")]
    return proposals


def investigate(finding: Insight, dream_id: int) -> Insight:
    ev = finding.evidence
    hit = "; ".join(part for part in (
        f"items {id_list(ev['items'])}" if ev["items"] else "",
        f"sessions {id_list(ev['sessions'])}" if ev["sessions"] else "") if part)
    text = (f"Find the cause of {quote(ev['error'])} once ({hit}): every retry of an item it "
            "hits fails the same way.")
    work = (f"[dream {dream_id}] Find and fix the cause of the recurring failure "
            f"{quote(ev['error'], 300)} ({hit}).")
    action = {"do": "investigate", "error": ev["error"], "items": ev["items"],
              "sessions": ev["sessions"], "work": work}
    key = finding.key.split(":", 1)[1]
    return Insight(2, "investigate-failure", f"plan:investigate:{key}", text,
                   {"because": finding.key, **ev}, 85, action)


def for_failing_item(exp: Experience, finding: Insight, recurring: set[str],
                     dream_id: int) -> Insight | None:
    """Retry it (a failure that may pass), ask another Nova, or give up on it; nothing
    when a recurring failure covers it (investigating that comes first)."""
    ev = finding.evidence
    error = ev["error"] or ""
    if error and error_key(error) in recurring:
        return None
    what = f"item {ev['item']} ({quote(ev['text'], 60)})"
    finished = ev["status"] in ("dead", "failed")
    if finished and TRANSIENT.search(error):
        text = (f"Retry {what}: its {plural(ev['attempts'], 'attempt')} ended with "
                f"{quote(error)}, which may pass on another try.")
        work = f"[dream {dream_id}] Retry work item {ev['item']}: {ev['text']}"
        return _proposal("retry-item", f"plan:retry:{ev['item']}", text, finding, 65,
                         {"do": "retry", "item": ev["item"], "work": work[:WORK_TEXT_CHARS]})
    if finished and exp.others:
        names = " or ".join(exp.others[:3])
        text = (f"Ask {names} to take over {what}: {exp.nova} failed it "
                f"{plural(ev['attempts'], 'time')} with {quote(error)}.")
        return _proposal("ask-nova", f"plan:ask:{ev['item']}", text, finding, 60,
                         {"do": "ask", "item": ev["item"], "novas": list(exp.others),
                          "command": f"torchsm message send {exp.nova} {exp.others[0]} "
                                     f"'please take over work item {ev['item']}'"})
    if not finished and not TRANSIENT.search(error):
        text = (f"Give up on {what}: {ev['attempts']} of its {ev['max_attempts']} attempts "
                f"failed with {quote(error)}; `torchsm queue fail {ev['item']}` spares the "
                "last one.")
        return _proposal("give-up-item", f"plan:give-up:{ev['item']}", text, finding, 55,
                         {"do": "give-up", "item": ev["item"],
                          "command": f"torchsm queue fail {ev['item']}"})
    return None


def reprioritise(finding: Insight) -> Insight | None:
    ev = finding.evidence
    tier = ev["priority"]
    if tier not in TIERS or tier == TIERS[0]:
        return None
    higher = TIERS[TIERS.index(tier) - 1]
    times = f", {ev['factor']:g}x the usual wait" if ev["factor"] else ""
    text = (f"Raise item {ev['item']} ({quote(ev['text'], 60)}) from {tier} to {higher}: it "
            f"has waited {duration(ev['age_s'])}{times}.")
    return _proposal("reprioritise-item", f"plan:reprioritise:{ev['item']}", text, finding, 55,
                     {"do": "reprioritise", "item": ev["item"], "from": tier, "to": higher})


def lengthen_rest(exp: Experience, config: Config, found: list[Insight]) -> Insight | None:
    """One proposal for every sign that the Nova runs too hot: rests that overheating
    caused, a busy hour near the session budget, a day near the cost budget."""
    from torchsm.personalities import get_personality

    reasons = [i for i in found if (i.kind == "cooldown-cause"
                                    and i.evidence["cause"] in OVERHEATING)
               or i.kind in ("budget-sessions", "budget-cost")]
    if not reasons:
        return None
    try:
        profile = get_personality(exp.personality, config.personalities)
    except UnknownPersonality:
        return None
    base = profile.base_cycle_s
    why = "; ".join(_hot(i) for i in reasons)
    text = (f"Lengthen {exp.nova}'s rest: base_cycle_s {base:g}s -> {base * 2:g}s in "
            f"[personalities.{profile.name}] ({why}).")
    action = {"do": "lengthen-rest", "personality": profile.name,
              "base_cycle_s": {"from": base, "to": base * 2}}
    return Insight(2, "lengthen-rest", "plan:lengthen-rest", text,
                   {"because": [i.key for i in reasons]}, 60, action)


def _hot(finding: Insight) -> str:
    ev = finding.evidence
    if finding.kind == "cooldown-cause":
        return f"{ev['cooldowns'] + ev['meditations']} rests from {ev['cause']}"
    if finding.kind == "budget-sessions":
        return f"{ev['peak']} of {ev['limit']} sessions in one hour"
    return f"{ev['share']:.0%} of the daily cost budget"


def lower_sender(config: Config, finding: Insight) -> Insight:
    ev = finding.evidence
    sender = ev["sender"]
    weight = config.wake.senders.get(sender, 0)
    text = (f"Lower {sender}'s weight: [wake.senders] \"{sender}\" = {weight - 1} puts its "
            f"wake signals a tier lower ({ev['count']} of {ev['of']} signals and messages "
            "came from it).")
    return _proposal("lower-sender", f"plan:lower-sender:{slug(sender)}", text, finding, 50,
                     {"do": "lower-sender", "sender": sender,
                      "weight": {"from": weight, "to": weight - 1}})


def _proposal(kind: str, key: str, text: str, finding: Insight, weight: int,
              action: dict[str, Any]) -> Insight:
    return Insight(2, kind, key, text, {"because": finding.key, **finding.evidence}, weight,
                   action)


# --- inside the dream's transaction --------------------------------------------------------

def apply(conn: sqlite3.Connection, config: Config, dream_id: int, exp: Experience,
          found: list[Insight], now: float) -> list[Insight]:
    """Remember, consolidate, add the work items; the insights as they end up (with their
    work items, and one for the memory when anything changed there)."""
    from torchsm.dreams import memory

    remembered = [(i.key, memory.add(conn, config, nova=exp.nova, kind="insight",
                                     text=i.text, now=now, writer=f"dream:{dream_id}",
                                     source=f"dream:{dream_id}", key=i.key))
                  for i in found if i.kind in REMEMBERED]
    consolidated = memory.consolidate(conn, config, exp.nova, now)
    found = add_work(conn, config, dream_id, exp.nova, found, now)
    note = _memory_insight(remembered, consolidated)
    return found + ([note] if note is not None else [])


def _memory_insight(remembered: list, consolidated) -> Insight | None:
    tidied = {"merged": consolidated.merged, "strengthened": consolidated.strengthened,
              "aged_out": consolidated.aged_out, "capped": consolidated.capped}
    if not remembered and not any(tidied.values()):
        return None
    new = sum(1 for _, added in remembered if added.created)
    text = (f"Remembered {plural(len(remembered), 'insight')} ({new} new, "
            f"{len(remembered) - new} strengthened); consolidation merged {tidied['merged']}, "
            f"aged out {tidied['aged_out']} and capped {tidied['capped']} memories.")
    evidence = {"remembered": [{"key": key, "memory": added.memory.id, "new": added.created,
                                "strength": added.memory.strength}
                               for key, added in remembered],
                "consolidated": tidied}
    return Insight(2, "memory", "memory", text, evidence, 5)


def add_work(conn: sqlite3.Connection, config: Config, dream_id: int, nova: str,
             found: list[Insight], now: float) -> list[Insight]:
    """With [dreams] propose_work, the proposals an agent can carry out become `low` work
    items for the Nova, the most important first, within the daily cap."""
    if not config.dreams.propose_work:
        return found
    from torchsm.tiers import Tier
    from torchsm.work import work_queue

    room = config.dreams.max_work_per_day - work_queue.added_from(conn, "dream:", nova,
                                                                      now - DAY_S)
    waiting = open_keys(conn, nova)
    out = list(found)
    for index in sorted((n for n, i in enumerate(found) if i.action and i.action.get("work")),
                        key=lambda n: (-found[n].weight, found[n].key)):
        insight = found[index]
        if insight.key in waiting:
            out[index] = _skipped(insight, "an item an earlier dream added for it still waits")
        elif room <= 0:
            out[index] = _skipped(insight, f"[dreams] max_work_per_day "
                                           f"({config.dreams.max_work_per_day}) reached")
        else:
            item = work_queue.add_in(conn, insight.action["work"], nova=nova,
                                    priority=Tier.LOW, max_attempts=config.queue.max_attempts,
                                    now=now, source_key=f"{DREAM_TAG}{dream_id}:{insight.key}")
            out[index] = insight._replace(work_item=item.id if item else None)
            room -= 1
    return out


def _skipped(insight: Insight, why: str) -> Insight:
    return insight._replace(action={**insight.action, "work_skipped": why})


def open_keys(conn: sqlite3.Connection, nova: str) -> set[str]:
    """The insight keys of the dream items of `nova` still open."""
    from torchsm.work import work_queue

    return {key.split(":", 2)[2] for key in work_queue.open_source_keys(conn, "dream:", nova)
            if key.count(":") >= 2}
