"""What `torchsm ps` shows: one row per Nova of the home, its supervisor (pid, who runs it,
uptime, restarts), its state, the session running and its age, and the next start and
why, in nova_status's words (the same rows `status` shows: no rule of its own)."""

from __future__ import annotations

import time
from typing import Any

from torchsm.config import Config, Home
from torchsm.observe import nova_status
from torchsm.storage import fleet_files, run_files


def ps_rows(home: Home, config: Config, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    members = (fleet_files.read_state(home) or {}).get("novas", {})
    return [_ps_row(row, members.get(row["nova"]), run_files.supervisor_pid(home, row["nova"]),
                    now) for row in nova_status.status_rows(home, config, now=now)]


def _ps_row(row: dict[str, Any], member: dict[str, Any] | None, pid: int | None,
            now: float) -> dict[str, Any]:
    ours = member is not None and pid is not None and member.get("pid") == pid
    plan = row["plan"] or {}
    running = plan.get("state") == "running"
    return {"nova": row["nova"], "pid": pid,
            "by": "fleet" if ours else "outside" if pid else None,
            "uptime_s": _age(member.get("started_at"), now) if ours else None,
            "restarts": member.get("restarts", 0) if member else None,
            "state": row["state"],
            "session": plan.get("session") if running else None,
            "session_age_s": _age(plan.get("session_started_at"), now)
            if running else None,
            "next_start": "running" if running else row["next_start"], "why": row["why"]}


def _age(since: float | None, now: float) -> float | None:
    return None if since is None else round(max(0.0, now - since), 1)
