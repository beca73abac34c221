"""A session's start: what the next session is for (`next_work`), and taking it (`take`).

Taking claims the work item, then writes the start in one transaction: admission asked once
more on facts read there (torchsm.supervisor.admission), so whatever changed since the supervisor's
check, no session starts that admission refuses; then the ledger row, the account's grant
(the request this start sends, counted until its answer is read), the wake signal
delivered, the restart request cleared and the `session.started` outbox entry. A refusal
releases the claim, uncounted, and goes back to the loop to apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchsm.config import Config, Home
from torchsm.mirror import outbox, streams
from torchsm.storage import store
from torchsm.supervisor import admission
from torchsm.tiers import Tier
from torchsm.usage import accounts, ledger, pacing, server_grants
from torchsm.work import prompts, wake, work_queue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from torchsm.cluster.work import ClusterItem

LEASE_MARGIN_S = 60  # a claim outlives the longest session, so nobody else gets the item


@dataclass(frozen=True)
class Work:
    """What the next session is for, before anything is taken."""

    kind: str  # wake | restart | item | cluster
    signal: wake.Signal | None = None
    restart: tuple[float, str | None] | None = None  # (requested at, reason)
    cluster: ClusterItem | None = None  # claimed once admitted (None: not yet)

    @property
    def critical(self) -> bool:
        return self.signal is not None and self.signal.tier is Tier.CRITICAL


@dataclass(frozen=True)
class Taken:
    """Work taken for a session: the ledger row exists and the item (if any) is claimed."""

    session_id: int
    kind: str
    prompt: str
    item: work_queue.WorkItem | None
    signal_id: int | None
    at: float
    cluster: ClusterItem | None = None


def next_work(conn, name: str, now: float) -> Work | None:
    """The most urgent work of Nova `name`: a due wake, a restart request, a claimable
    item; None: nothing to do."""
    signal_due = wake.next_due_in(conn, name, now)
    if signal_due is not None:
        return Work("wake", signal=signal_due)
    nova = store.load_nova(conn, name)
    restart = store.restart_request(conn, nova.id) if nova else None
    if restart is not None:
        return Work("restart", restart=restart)
    if work_queue.has_claimable(conn, name, now):
        return Work("item")
    return None


def take(home: Home, config: Config, name: str, work: Work, request: admission.Request,
         now: float) -> Taken | admission.Refusal | None:
    """Claim the work and record the start; a refusal when admission says no in the
    recording transaction, None when someone else took the work meanwhile."""
    item = None
    if work.kind in ("item", "restart"):
        with work_queue.open_queue(home, config) as queue:
            item = queue.try_claim(name, lease_s=lease_s(config), now=now)
        if item is None and work.kind == "item":
            return None
    prompt = prompt_for(work, item, name)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        started = db.write(lambda conn: _record(conn, config, name, work, request, item,
                                                prompt, now))
        if not isinstance(started, int) and item is not None:
            db.write(lambda conn: work_queue.release_claims_in(
                conn, name, since=now, now=now, counted=False))
    if not isinstance(started, int):
        return started
    return Taken(started, work.kind, prompt, item, work.signal.id if work.signal else None, now,
                 work.cluster)


def _record(conn, config: Config, name: str, work: Work, request: admission.Request,
            item: work_queue.WorkItem | None, prompt: str,
            now: float) -> int | admission.Refusal | None:
    facts, refused = admission.check(conn, config, name, request, now)
    if refused is not None:
        return refused
    nova = facts.nova
    if not server_grants.granted(conn, config, nova, now):
        return admission.Refusal(admission.Rule.USAGE_PACING,
                                 f"usage pacing: {server_grants.TAKEN_WHY}",
                                 now + pacing.IN_FLIGHT_POLL_S)
    accounts.grant(conn, nova.account, nova.id, now)
    if work.signal is not None and not wake.deliver_in(conn, work.signal.id, now):
        return None
    if work.restart is not None:
        store.clear_restart_request(conn, nova.id, work.restart[0])
    session_id = ledger.start(conn, nova_id=nova.id, kind=work.kind, prompt=prompt,
                              item_id=item.id if item else None,
                              signal_id=work.signal.id if work.signal else None, at=now)
    outbox.put(conn, config, streams.OPS_STREAM, streams.Entry.new(
        "session.started", name, {"session": session_id, "kind": work.kind,
                                  "item": item.id if item else None}, now))
    return session_id


def lease_s(config: Config) -> float:
    """How long a claim lasts: past the longest session, its stop grace and a margin."""
    cfg = config.supervisor
    return max(config.queue.lease_s,
               cfg.session_timeout_s + cfg.stop_grace_s + LEASE_MARGIN_S)


def prompt_for(work: Work, item: work_queue.WorkItem | None, nova: str) -> str:
    if work.signal is not None:
        return prompts.wake_prompt(work.signal.tier.value, work.signal.sender,
                                   work.signal.message, nova)
    if work.kind == "restart":
        return prompts.restart_prompt(work.restart[1] if work.restart else None, item)
    if work.cluster is not None:
        return prompts.cluster_item_prompt(work.cluster)
    return prompts.item_prompt(item)


def describe(taken: Taken) -> str:
    """One line for people: the item and its first line, or the prompt's."""
    if taken.item is not None:
        first_line = taken.item.text.splitlines()[0][:80]
        kind = "" if taken.kind == "item" else f"{taken.kind}, "
        return f"{kind}item {taken.item.id}: {first_line}"
    if taken.cluster is not None:
        first_line = taken.cluster.text.splitlines()[0][:80]
        return f"cluster item {taken.cluster.item_id}: {first_line}"
    return f"{taken.kind}: {taken.prompt.splitlines()[0][:80]}"
