"""What every hook handler is given and gives back: the hook's context (the payload, the
Nova, the store), its result, and the run recorded for metrics. The Stop hook's decision
(torchsm.hooks.stop) and the other handlers (torchsm.hooks.handlers) both build on it.
"""

from __future__ import annotations

import time

from torchsm.config import Config, Home
from torchsm.records import record
from torchsm.storage import store

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any, Mapping


@record
class HookResult:
    # recorded | continued | allowed | blocked | bang | cooled | meditated | context | error
    outcome: str
    stdout: str | None = None  # what Claude Code reads
    warning: str | None = None  # one line for stderr (Claude Code shows it in verbose mode)
    item_id: int | None = None
    detail: str | None = None
    digest: str | None = None  # Stop: the digest of last_assistant_message
    recorded: bool = False  # the handler recorded the run itself, with what it changed


@record
class HookContext:
    home: Home
    config: Config
    db: store.Store
    nova: store.NovaRow
    event: str
    payload: dict[str, Any]
    now: float
    env: Mapping[str, str]
    started: float = 0.0  # time.monotonic() when the hook started

    @property
    def duration_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000

    @property
    def session_id(self) -> str | None:
        value = self.payload.get("session_id")
        return value if isinstance(value, str) else None


def save_run(ctx: HookContext, result: HookResult) -> None:
    """Record the run in a transaction of its own."""
    ctx.db.write(lambda conn: record_run(conn, ctx, result))


def record_run(conn, ctx: HookContext, result: HookResult) -> None:
    store.record_hook_run(
        conn, nova_id=ctx.nova.id, event=ctx.event, session_id=ctx.session_id, at=ctx.now,
        duration_ms=ctx.duration_ms, outcome=result.outcome, item_id=result.item_id,
        detail=result.detail, message_digest=result.digest)


def supervised_session(ctx: HookContext) -> int | None:
    """The ledger's session this hook runs in (the supervisor names it to its agent), or
    None outside a supervised session."""
    return given_by_supervisor(ctx, "TORCHSM_SESSION")


def given_by_supervisor(ctx: HookContext, variable: str) -> int | None:
    """The id the supervisor of this Nova's session put in `variable`, if it did."""
    given = ctx.env.get(variable, "")
    if not (given.isascii() and given.isdigit()) or ctx.env.get("TORCHSM_NOVA") != ctx.nova.name:
        return None
    return int(given) if int(given) <= store.INT64_MAX else None  # past it, no row can be
