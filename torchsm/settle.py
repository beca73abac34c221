"""Settling a finished session: record its end, finish or release its work, and answer
how it ended.

The item is done on success and goes back to the queue with the attempt counted on a
failure of its own (not on a 529 or an account refusal). The answer to a failure:
a usage limit holds every Nova on the account until the reset (torchsm.limits); billing or
authentication meditates with an alert until a person looks; other failures cool with
backoff, and sessions that keep ending the same way trip the no-progress breaker
(novas.safety_cool decides between a cooldown and meditation). A 529 is left to the
supervisor, which only delays its next start.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from torchsm import (accounts, agents, ledger, limits, memory, mirror, novas, outbox, outcome,
                     progress, store, workqueue)
from torchsm.config import Config, Home
from torchsm.errors import DatabaseLocked, TransitionRefused
from torchsm.machine import State
from torchsm.outcome import Outcome, Verdict

RECORD_RETRY_CAP_S = 1.0  # the longest pause between tries to record a session's end
RECORD_NOTE_EVERY = 10  # one warning per this many tries

# failures that say nothing about the work item: its attempt is not counted
NOT_THE_ITEMS_FAULT = (Outcome.OVERLOADED, Outcome.ACCOUNT)

Emit = Callable[..., None]  # emit(event, message, **data)
OnCooled = Callable[[novas.TransitionResult], None]


@dataclass(frozen=True)
class Settled:
    released: list[tuple[int, str]]  # (item id, status) of the items the session gave back


class Settler:
    """Settles the sessions of one Nova."""

    def __init__(self, home: Home, config: Config, name: str, *, rng: random.Random,
                 emit: Emit, on_cooled: OnCooled):
        self.home, self.config, self.name, self.rng = home, config, name, rng
        self.emit, self.on_cooled = emit, on_cooled

    def settle(self, taken, run: agents.SessionRun, verdict: Verdict,
               unstored: list[dict[str, Any]], now: float) -> Settled:
        """Record the end and the work's fate in one transaction, then answer a failure."""
        released = self._record(taken, run, verdict, unstored, now)
        if verdict.outcome is Outcome.ACCOUNT:
            self._meditate_for_account(taken, verdict, now)
        elif verdict.outcome is Outcome.RATE_LIMITED:
            self._hold_for_limit(taken, verdict, now)
        elif verdict.failed and verdict.outcome is not Outcome.OVERLOADED:
            self._cool_after_failure(taken, verdict, now)
        elif not verdict.failed:
            self.break_if_no_progress(taken, now)
        return Settled(released)

    def _record(self, taken, run: agents.SessionRun, verdict: Verdict,
                unstored: list[dict[str, Any]], now: float) -> list[tuple[int, str]]:
        end = outcome.ledger_end(run, verdict)
        counted = verdict.failed and verdict.outcome not in NOT_THE_ITEMS_FAULT

        def record(conn) -> list[tuple[int, str]]:
            ledger.finish(conn, taken.session_id, end)
            outbox.put(conn, self.config, mirror.OPS_STREAM, mirror.Entry.new(
                "session.ended", self.name, {"session": taken.session_id,
                                             "outcome": verdict.outcome.value,
                                             "exit_status": run.exit_status,
                                             "error": verdict.error}, now))
            nova = self._nova(conn)
            accounts.answered(conn, nova.id)
            for info in unstored:  # what the live reading could not store
                rows, _ = accounts.windows_from_event(info, now, self.name)
                accounts.learn(conn, nova.account, rows, now)
            if verdict.outcome is Outcome.OK and taken.item is not None:
                self._finish_item(conn, taken, run, now)
            # whatever the session still holds goes back: nothing stays claimed
            return workqueue.release_claims_in(
                conn, self.name, since=taken.at, now=now, counted=counted,
                error=verdict.error if verdict.failed else None)

        released = self._until_recorded(taken, record)
        if unstored:
            with self._store() as db:
                limits.enforce(db, self.home, self.config, self._account(db), now, True)
        return released

    def _finish_item(self, conn, taken, run: agents.SessionRun, now: float) -> None:
        """The session's item done, unless the agent (or a Stop hook) already finished or
        failed it; an item done in this session leaves its episode (once: a Stop hook may
        have left it already)."""
        item = taken.item
        if not workqueue.finish_claimed_by(conn, item.id, self.name, now):
            item = workqueue.load_item(conn, item.id)
            if not (item and item.status.value == "done" and item.claimed_by == self.name
                    and (item.finished_at or 0) >= taken.at):
                return
        memory.remember_episode(conn, self.config, self.name, item,
                                run.output.last_assistant_text, now)

    def _until_recorded(self, taken, record: Callable[[Any], Any]) -> Any:
        """Write the end of a session, however long the database stays locked: a
        supervisor never carries on (nor starts anything) with a result unrecorded."""
        for attempt in itertools.count():
            try:
                with self._store() as db:
                    return db.write(record)
            except DatabaseLocked as exc:
                if attempt % RECORD_NOTE_EVERY == 0:
                    self.emit("warning", f"{exc.message}; the end of session "
                                         f"{taken.session_id} is not recorded yet: trying again")
                time.sleep(min(RECORD_RETRY_CAP_S, 0.05 * 2 ** min(attempt, 10)))

    def _hold_for_limit(self, taken, verdict: Verdict, now: float) -> None:
        """A usage limit or a 429: every Nova on the account holds until the reset the
        provider announced (else the one the message names, else an unknown one)."""
        with self._store() as db:
            nova = db.read(self._nova)
            found, warning = limits.refused(db, self.home, self.config, nova,
                                            verdict.error or "", now)
        if warning:
            self.emit("warning", warning)
        self.emit("limit", f"session {taken.session_id} {verdict.outcome.value}: account "
                           f"{nova.account} {found.kind}: {found.why}", account=nova.account)

    def break_if_no_progress(self, taken, now: float, bang: bool = False) -> bool:
        """Cool (safety_cool: growing backoff, then meditation) when the last
        `no_progress_sessions` sessions all ended the same way; the reason says how."""
        n = self.config.supervisor.no_progress_sessions
        with self._store() as db:
            endings = db.read(lambda conn: ledger.recent_endings(conn, self._nova(conn).id, n))
            nova = db.read(self._nova)
        why = progress.no_progress(endings, n)
        if why is None:
            return False
        if cooled_during(nova, taken.at, now, None):
            return True  # a hook cooled it for this session already
        self.on_cooled(novas.safety_cool(self.home, self.config, self.name, reason=why,
                                         bang=bang, now=now, rng=self.rng))
        return True

    def _meditate_for_account(self, taken, verdict: Verdict, now: float) -> None:
        """Billing or authentication refused: retrying cannot help; a person must look."""
        why = f"session {taken.session_id} {verdict.outcome.value}: {verdict.error}"[:500]
        with self._store() as db:
            db.write(lambda conn: store.save_alert(conn, nova=self.name, at=now,
                                                   kind=verdict.outcome.value, message=why))
            nova = db.read(self._nova)
        if nova.state == State.MEDITATING.value and nova.since >= taken.at:
            return  # the StopFailure hook meditated for this very failure
        try:
            result = novas.meditate_for_a_person(self.home, self.config, self.name,
                                                 reason=why, now=now)
        except TransitionRefused:
            return
        self.on_cooled(result)

    def _cool_after_failure(self, taken, verdict: Verdict, now: float) -> None:
        with self._store() as db:
            nova = db.read(self._nova)
        if cooled_during(nova, taken.at, now, None):
            return  # a hook (a bang) cooled it for this very failure
        crashed = verdict.outcome is Outcome.CRASHED
        if self.break_if_no_progress(taken, now, bang=crashed):
            return  # the same cooldown, with the reason that says it goes round in circles
        why = f"session {taken.session_id} {verdict.outcome.value}: {verdict.error}"[:500]
        self.on_cooled(novas.safety_cool(self.home, self.config, self.name, reason=why,
                                         bang=crashed, now=now, rng=self.rng))

    def _store(self) -> store.Store:
        return store.open_store(self.home, self.config.db.lock_timeout_s)

    def _nova(self, conn) -> store.NovaRow:
        nova = store.nova_named(conn, self.name)
        return nova

    def _account(self, db: store.Store) -> str:
        return db.read(self._nova).account


def cooled_during(nova: store.NovaRow, since: float, now: float, until: float | None) -> bool:
    """Whether the Nova began waiting since `since` (a hook cooled it for this session)."""
    waiting = (nova.state in (State.COOLING.value, State.MEDITATING.value)
               and nova.until is not None and nova.until > now)
    return waiting and nova.since >= since and (until is None or nova.until >= until)


def ended_text(taken, run: agents.SessionRun, verdict: Verdict,
               released: list[tuple[int, str]]) -> str:
    text = f"session {taken.session_id} {verdict.outcome.value} in {run.duration_s:.1f}s"
    if verdict.error:
        text += f": {verdict.error}"
    elif run.output.text:
        text += f": {' '.join(run.output.text.split())[:120]}"
    for item_id, status in released:
        text += (f"; item {item_id} back to {status}" if status == "pending"
                 else f"; item {item_id} is {status} (no attempts left)")
    return text
