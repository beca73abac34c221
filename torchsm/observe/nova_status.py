"""What `torchsm status` shows of each Nova: its row, its supervisor's plan, and the
current reason (`why`): why the Nova is in its state now and what it waits for.

The history's last reason says why the Nova last changed state ("dream 1 done",
"supervisor: the wait is over"): for a working Nova that is history, not what it is
doing. So a waiting Nova's reason is its wait (until when and because of what; a usage
limit names its account; a hold for a person says who lifts it, in admission's words),
a dreaming or compacting one's is why it entered that state, and a working one's is what
its supervisor does or waits for (the plan), or that no supervisor runs. `reason` stays
in the rows as it was: the last transition's.
"""

from __future__ import annotations

import time
from typing import Any

from torchsm import novas
from torchsm.clock import format_time
from torchsm.config import Config, Home, usage_for
from torchsm.machine import State
from torchsm.storage import fleet_files, run_files, store
from torchsm.supervisor import admission

IDLE = "idle:"  # how the supervisor's plan begins when it only looks for work again


def status_rows(home: Home, config: Config, name: str | None = None,
                now: float | None = None) -> list[dict[str, Any]]:
    """The `status --json` objects: each Nova's row, `next_start`, `plan` and `why`."""
    now = time.time() if now is None else now
    members = (fleet_files.read_state(home) or {}).get("novas", {})
    rows = []
    for row in novas.nova_rows(home, config, name):
        plan = run_files.read_plan(home, row.name)
        auto_resume = usage_for(config, row.account).auto_resume
        gone = None if plan else supervisor_gone(home, row.name, members.get(row.name))
        rows.append({**novas.nova_json(row),
                     "next_start": plan.get("next_start") if plan else None, "plan": plan,
                     "why": current_reason(row, plan, auto_resume, now, gone)})
    return rows


def supervisor_gone(home: Home, name: str, member: dict[str, Any] | None) -> str | None:
    """What became of Nova `name`'s supervisor when none runs: the fleet's word when it
    keeps the Nova (restarting it after a crash, starting it, or why not), else that one
    died leaving its plan; None when none ran (or one ended cleanly)."""
    if member is not None:
        if member.get("pid"):
            return f"the fleet is starting its supervisor (pid {member['pid']})"
        return f"no supervisor runs now: {member.get('why') or '-'} (the fleet keeps it)"
    left = run_files.left_plan(home, name)
    if left is not None:
        return (f"its supervisor (pid {left.get('pid')}) is gone: it died without "
                "ending cleanly")
    return None


def current_reason(nova: store.NovaRow, plan: dict[str, Any] | None, auto_resume: bool,
                   now: float, gone: str | None = None) -> str:
    """Why `nova` is in its state at `now`, and what it waits for; `gone` says what became
    of its supervisor when none runs (supervisor_gone)."""
    if novas.held_for_a_person(nova.limit_hold):
        return _held(nova)
    if admission.waiting(nova, now):
        return _waiting(nova)
    if admission.held_for_a_person(nova, auto_resume):
        return _held(nova)
    if nova.state in admission.WAITING_VALUES:
        return _wait_over(nova, plan, gone)
    if nova.state != State.WORKING.value:
        return f"{nova.state}: {nova.reason or '-'}"
    return _working(nova, plan, gone)


def _held(nova: store.NovaRow) -> str:
    why = admission.held_why(nova)  # a usage limit's says which; an account error's not
    if novas.held_for_a_person(nova.limit_hold) and nova.reason:
        why += f" ({nova.reason})"
    return why


def _waiting(nova: store.NovaRow) -> str:
    if nova.limit_hold:
        return (f"held by account {nova.account}'s usage limit until "
                f"{format_time(nova.until)} ({nova.limit_hold})")
    return admission.waiting_why(nova.state, nova.until, nova.reason)


def _wait_over(nova: store.NovaRow, plan: dict[str, Any] | None, gone: str | None) -> str:
    over = f"{nova.state}: its wait ended at {format_time(nova.until)}"
    if nova.reason:
        over += f" ({nova.reason})"
    if plan is None and gone:
        return f"{over}; {gone}"
    if plan is None:
        return f"{over}; no supervisor runs for {nova.name} to resume it"
    return f"{over}; its supervisor resumes it"


def _working(nova: store.NovaRow, plan: dict[str, Any] | None, gone: str | None) -> str:
    if plan is None and gone:
        return f"working; {gone}"
    if plan is None:
        return (f"working; no supervisor runs for {nova.name} "
                f"(`torchsm run {nova.name} -- COMMAND` starts one)")
    why = str(plan.get("why") or plan.get("state") or "-")
    if plan.get("state") == "waiting" and plan.get("next_start") and not why.startswith(IDLE):
        return f"next start at {plan['next_start']}: {why}"
    return why
