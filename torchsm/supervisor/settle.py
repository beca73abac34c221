"""Settling a finished session: record its end, finish or release its work, and answer
how it ended.

The item is done on success and goes back to the queue with the attempt counted on a
failure of its own (not on a 529 or an account refusal). How the session ended is then
answered by the one decision (torchsm.endings.responses), applied once
(torchsm.endings.answers): when the StopFailure hook heard the ending first and answered
it, the session is answered already.
A 529's answer is a backoff: the supervisor only delays its next start.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from torchsm import novas
from torchsm.agent import session
from torchsm.config import Config, Home
from torchsm.dreams import memory
from torchsm.endings import answers, breaker, outcome
from torchsm.endings.outcome import Verdict
from torchsm.endings.responses import Ending, Heard, Response, Situation
from torchsm.errors import DatabaseLocked
from torchsm.mirror import outbox, streams
from torchsm.outcomes import Outcome
from torchsm.storage import store
from torchsm.usage import accounts, ledger, limits
from torchsm.work import work_queue

RECORD_RETRY_CAP_S = 1.0  # the longest pause between tries to record a session's end
RECORD_NOTE_EVERY = 10  # one warning per this many tries

# failures that say nothing about the work item: its attempt is not counted
NOT_THE_ITEMS_FAULT = (Outcome.OVERLOADED, Outcome.ACCOUNT)

Emit = Callable[..., None]  # emit(event, message, **data)
OnCooled = Callable[[novas.TransitionResult], None]


@dataclass(frozen=True)
class Settled:
    released: list[tuple[int, str]]  # (item id, status) of the items the session gave back
    response: Response  # how its ending was answered (nothing when a hook answered first)


class Settler:
    """Settles the sessions of one Nova."""

    def __init__(self, home: Home, config: Config, name: str, *, rng: random.Random,
                 emit: Emit, on_cooled: OnCooled):
        self.home, self.config, self.name, self.rng = home, config, name, rng
        self.emit, self.on_cooled = emit, on_cooled

    def settle(self, taken, run: session.SessionRun, verdict: Verdict,
               unstored: list[dict[str, Any]], now: float) -> Settled:
        """Record the end and the work's fate in one transaction, then answer the ending."""
        released = self._record(taken, run, verdict, unstored, now)
        return Settled(released, self._answer(taken, verdict, now))

    def _record(self, taken, run: session.SessionRun, verdict: Verdict,
                unstored: list[dict[str, Any]], now: float) -> list[tuple[int, str]]:
        end = outcome.ledger_end(run, verdict)
        counted = verdict.failed and verdict.outcome not in NOT_THE_ITEMS_FAULT

        def record(conn) -> list[tuple[int, str]]:
            ledger.finish(conn, taken.session_id, end)
            outbox.put(conn, self.config, streams.OPS_STREAM, streams.Entry.new(
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
            return work_queue.release_claims_in(
                conn, self.name, since=taken.at, now=now, counted=counted,
                error=verdict.error if verdict.failed else None)

        released = self._until_recorded(taken, record)
        if unstored:
            with self._store() as db:
                limits.enforce(db, self.home, self.config, self._account(db), now, True)
        return released

    def _finish_item(self, conn, taken, run: session.SessionRun, now: float) -> None:
        """The session's item done, unless the agent (or a Stop hook) already finished or
        failed it; an item done in this session leaves its episode (once: a Stop hook may
        have left it already)."""
        item = taken.item
        if not work_queue.finish_claimed_by(conn, item.id, self.name, now):
            item = work_queue.load_item(conn, item.id)
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

    def _answer(self, taken, verdict: Verdict, now: float) -> Response:
        """The one answer to how the session ended, unless it was answered already."""
        n = self.config.supervisor.no_progress_sessions
        ending = Ending(Heard.SESSION, verdict.outcome, verdict.error or "",
                        session_id=taken.session_id)

        def read(conn) -> tuple[store.NovaRow, Situation]:
            nova = self._nova(conn)
            held = novas.held_for_limit(nova) and (nova.until or 0) > now
            recent = tuple(map(breaker.Ending._make, ledger.recent_endings(conn, nova.id, n)))
            return nova, Situation(answers.session_answer(conn, taken.session_id, nova.id),
                                   recent, n, held)

        with self._store() as db:
            nova, situation = db.read(read)
            applied = answers.answer(self.home, self.config, db, nova, ending, situation, now,
                                     self.rng)
        self._tell(taken, verdict, nova, applied)
        return applied.response

    def _tell(self, taken, verdict: Verdict, nova: store.NovaRow,
              applied: answers.Applied) -> None:
        if applied.warning:
            self.emit("warning", applied.warning)
        if applied.held is not None:
            self.emit("limit", f"session {taken.session_id} {verdict.outcome.value}: account "
                               f"{nova.account} {applied.held.kind}: {applied.held.why}",
                      account=nova.account)
        if applied.transition is not None:
            self.on_cooled(applied.transition)

    def _store(self) -> store.Store:
        return store.open_store(self.home, self.config.db.lock_timeout_s)

    def _nova(self, conn) -> store.NovaRow:
        nova = store.nova_named(conn, self.name)
        return nova

    def _account(self, db: store.Store) -> str:
        return db.read(self._nova).account


def ended_text(taken, run: session.SessionRun, verdict: Verdict,
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
