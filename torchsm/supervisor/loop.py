"""The supervisor (`torchsm run`): the only code that starts agent sessions.

One loop per Nova, one pass of it per `step(now)`:
1. while the Nova is cooling or meditating, wait (a critical wake, which forces the Nova
   back to work, cuts the wait short);
2. pick the prompt: a due wake signal, else a restart request or the next work item, else
   idle: dream (torchsm.dreams.dreaming) at most once per [dreams] interval_s, after the
   personality's `reflection_every` sessions, with its `dream_probability` once per idle
   stretch; then wait one rhythm cycle;
3. start the agent only within the limits: its account's usage windows (pacing.py: at
   `stop_utilization` or a rejected window every Nova on the account holds until the
   reset; from `slow_utilization` the rest of the window is spread over the time to the
   reset, and near its end the account's Novas share it instead of racing),
   `max_sessions_per_hour` in any sliding hour and the account's `max_cost_usd_per_day`
   in any 24 hours (counted from the ledger), the rhythm's gap and quiet hours: one pure
   check (admission.py), asked before the wait and again in the transaction that records
   the start (session_start.py). A spent budget cools the Nova until the window frees;
4. run it, storing its usage signals as they are read (agent/reader.py), so the hooks
   of the same session decide on them;
5. settle it (settle.py): the item done on success, back to the queue with the attempt
   counted on failure; how it ended answered once (responses.py), unless a hook of the
   session answered it first; a 529's answer only delays the next start.
A home in a cluster (`[cluster] enabled`) also beats, and weighs the cluster's work against its
local items (cluster_turns.py): a cluster item runs like a local one, is claimed only
once admission lets a session start (a refusal is waited out as for a local item), and is
stopped before this host's lease could end.
`run()` loops over steps and does the waiting. Time and sleep come from a Clock, so the
policies are testable without waiting.
"""

from __future__ import annotations

import os
import dataclasses
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from torchsm import novas, personalities, safety
from torchsm.agent import orphans, session
from torchsm.alerts import conditions, delivery
from torchsm.clock import format_time
from torchsm.config import Config, Home, usage_for
from torchsm.dreams import dreaming
from torchsm.endings import outcome
from torchsm.endings.outcome import Verdict
from torchsm.endings.responses import Kind
from torchsm.errors import DatabaseLocked, DreamRunning, TransitionRefused
from torchsm.machine import Event, State
from torchsm.mirror import outbox
from torchsm.storage import run_files, store
from torchsm.storage.change_watch import ChangeWatch
from torchsm.supervisor import (admission, cluster_turns, launch, recovery, rhythm,
                                session_start, settle)
from torchsm.supervisor.session_start import Taken, Work
from torchsm.tiers import Tier
from torchsm.usage import ledger, limits, pacing
from torchsm.work import wake, work_queue

POLL_S = 0.25  # how often a wait looks for a critical wake (one PRAGMA when nothing changed)
LOCKED_RETRIES = 5  # consecutive passes that found the database locked before giving up
HELD_RECHECK_S = 3600
RECOVER_OTHERS_EVERY_S = 10.0
DREAM_LOOK_S = 1.0  # how soon to look again while someone else's dream runs
CLAIM_AGAIN_S = 0.1  # a cluster item another host claimed first: look again this soon

Report = Callable[[dict[str, Any]], None]


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    command: tuple[str, ...]
    cwd: str | None = None
    once: bool = False  # at most one session, then exit
    max_sessions: int | None = None  # exit after this many sessions
    until_idle: bool = False  # exit when there is nothing to do
    agent_output: str = session.AUTO  # claude-code | plain | auto (from COMMAND)

    @property
    def claude_code(self) -> bool:
        """Whether the agent's usage and cost signals are read (session.speaks_claude_code)."""
        return session.speaks_claude_code(self.command, self.agent_output)


@dataclass(frozen=True)
class Wait:
    until: float
    why: str
    critical_cuts: bool = True  # whether a due critical wake ends it early
    planned: bool = True  # False: no start is planned (`until` is only the next look)


@dataclass(frozen=True)
class Ran:
    session_id: int
    verdict: Verdict


@dataclass(frozen=True)
class Finished:
    why: str


Step = Wait | Ran | Finished


@dataclass(frozen=True)
class RunSummary:
    sessions: int
    why: str


class Supervisor:
    """Supervises one Nova. Take its lock first (`process.supervise` does)."""

    def __init__(self, home: Home, config: Config, name: str, options: RunOptions, *,
                 clock: Clock, stop: threading.Event | None = None,
                 rng: random.Random | None = None,
                 load: Callable[[], float | None] = wake.load_per_core,
                 report: Report = lambda event: None, base_env: dict[str, str] | None = None,
                 poll_s: float = POLL_S):
        self.home, self.config, self.name, self.options = home, config, name, options
        self.clock, self.rng, self.load, self._report = clock, rng or random.Random(), load, report
        self.stop = stop or threading.Event()
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.poll_s = poll_s
        self.watch: ChangeWatch | None = None
        self._dream_rolled = False  # one roll of the dice per idle stretch
        self._last_wait_why: str | None = None
        self._locked_passes = 0
        self._overload_streak = 0  # consecutive 529s: each backs off longer
        self._not_before = 0.0  # an overload's short backoff: no start before this
        self._usage_note: dict[str, Any] | None = None  # what the usage windows say, for plans
        self._next_recovery = 0.0  # when to look again for other Novas' dead supervisors
        self._next_beat = 0.0  # when to touch the plan again (the heartbeat alerts read)
        self._next_alerts = 0.0  # when to evaluate the alert conditions again
        self.courier = delivery.Courier(home, config, clock.now, self.stop)
        self._agent = launch.Agent(
            options.command, options.cwd, options.claude_code, self.base_env,
            orphans.supervisor_mark(), clock.now, self.stop.is_set, self._emit)
        self.settler = settle.Settler(home, config, name, rng=self.rng, emit=self._emit,
                                      on_cooled=self._emit_cooled)
        self.cluster: cluster_turns.ClusterTurns | None = None  # joined by run()

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Step and wait until an option, a signal or idleness ends the run."""
        self.watch = ChangeWatch(self.home)
        self._recover_abandoned()
        sessions, why = 0, "stopped"
        self.cluster = cluster_turns.join(self.home, self.config, self.name, self.clock.now,
                                          self._emit)
        try:
            while not self.stop.is_set():
                step = self._step_tolerating_locks()
                if isinstance(step, Finished):
                    why = step.why
                    break
                if isinstance(step, Ran):
                    sessions += 1
                    if self._enough(sessions):
                        why = f"{sessions} session{'s' if sessions > 1 else ''} done"
                        break
                    continue
                if step.until > self.clock.now():
                    self._wait(step)
        finally:
            if self.cluster is not None:
                self.cluster.close()
            self.courier.close()
            self._report_deliveries()
            run_files.remove_plan(self.home, self.name)
            self.watch.close()
        return RunSummary(sessions, why)

    def _enough(self, sessions: int) -> bool:
        limit = 1 if self.options.once else self.options.max_sessions
        return limit is not None and sessions >= limit

    def _step_tolerating_locks(self) -> Step:
        # A days-long loop outlives a moment of contention; a database that stays locked
        # pass after pass is an error for a person.
        try:
            step = self.step(self.clock.now())
        except DatabaseLocked as exc:
            self._locked_passes += 1
            if self._locked_passes >= LOCKED_RETRIES:
                raise
            self._emit("warning", f"{exc.message}; trying again")
            return Wait(self.clock.now() + self.config.db.lock_timeout_s, "database locked")
        self._locked_passes = 0
        return step

    def step(self, now: float) -> Step:
        """One pass: decide, and start one session when one is due. Returns what happened,
        or how long to wait and why."""
        nova = self._load_nova()
        if admission.waiting(nova, now):
            if self.options.until_idle and self._work_to_do(now) is None:
                return Finished("idle: nothing to do")
            # Only a change of the Nova ends this wait early: a critical wake forces it
            # back to work when it is sent, and a critical signal that was pending before
            # the cooldown began does not break it.
            return Wait(nova.until, admission.waiting_why(nova.state, nova.until, nova.reason),
                        critical_cuts=False)
        if admission.held_for_a_person(nova, usage_for(self.config, nova.account).auto_resume):
            return self._held(admission.held_why(nova), now)
        if nova.state == State.DREAMING.value and dreaming.running(self.home, self.name):
            # a person's `torchsm dream` (a second or so): it sends the Nova back itself
            return Wait(now + DREAM_LOOK_S, "dreaming", planned=False)
        if nova.state != State.WORKING.value:
            self._resume(nova, now)
        self._recover_others(now)
        work = self._work_to_do(now)
        if work is None:
            return self._idle(nova, now)
        return self._start(work, now)

    def _work_to_do(self, now: float) -> Work | None:
        """The next work: a wake, a restart, the cluster's turn or a local item."""
        work = self._next_work(now)
        if self.cluster is None or (work is not None and work.kind != "item"):
            return work
        return Work("cluster") if self.cluster.waiting(self._local_tier(now)) else work

    def _local_tier(self, now: float) -> Tier | None:
        """The tier of the Nova's most urgent claimable local item: only a more urgent
        cluster item is the cluster's turn (a wake or a restart comes first, and a local
        item wins a tie)."""
        with self._store() as db:
            return db.read(lambda conn: work_queue.most_urgent_claimable(conn, self.name, now))

    def _start(self, work: Work, now: float) -> Step:
        """Ask admission, take the work (admission asked again as the start is recorded),
        run the session; or apply the refusal. A cluster item is claimed only once
        admitted: a refused pass takes nothing, so nothing goes back to the pool."""
        # one load reading for the check and the record
        request = admission.Request(work.kind, work.critical, self.load(), self._not_before)
        refusal = self._why_not(request, now)
        if refusal is not None:
            return self._refused(refusal, work, now)
        if work.kind == "cluster":
            work = self._claim_cluster(now)
            if work is None:  # another host was faster: look again (soon, never in a spin)
                return Wait(now + CLAIM_AGAIN_S, "the cluster's item was taken meanwhile")
        taken = None if self.stop.is_set() else session_start.take(
            self.home, self.config, self.name, work, request, now)
        if isinstance(taken, admission.Refusal):
            self._release_cluster(work)
            return self._refused(taken, work, now)
        if taken is None:  # stopping, or someone else took it meanwhile: look again at once
            self._release_cluster(work)
            return Wait(now, "the work was taken meanwhile")
        if taken.cluster is not None:
            self.cluster.started(taken.cluster, taken.session_id)
        return self._run_session(taken)

    def _claim_cluster(self, now: float) -> Work | None:
        """The cluster's item for an admitted start, against the local work as it is now."""
        item = self.cluster.claim(self._local_tier(now))
        return None if item is None else Work("cluster", cluster=item)

    def _release_cluster(self, work: Work) -> None:
        """A cluster item no session runs goes back, no attempt counted."""
        if work.cluster is not None:
            self.cluster.decide(work.cluster, None, cluster_turns.RELEASED)
            self.cluster.settle_left()

    # --- deciding ------------------------------------------------------------------------

    def _load_nova(self) -> store.NovaRow:
        with self._store() as db:
            nova = db.read(lambda conn: store.nova_named(conn, self.name))
        return nova

    def _resume(self, nova: store.NovaRow, now: float) -> None:
        """Back to work: a wait that is over, or a dream or compaction that no running
        session owns any more."""
        reason = ("the wait is over" if nova.state in admission.WAITING_VALUES
                  else f"no session is {nova.state}")
        try:
            novas.transition(self.home, self.config, self.name, Event.WORK,
                             reason=f"supervisor: {reason}", now=now)
        except TransitionRefused:
            return  # changed meanwhile; the next pass sees how
        self._emit("resume", f"{nova.state} -> working ({reason})")

    def _held(self, why: str, now: float) -> Step:
        if self.options.until_idle or self.options.once:
            return Finished(why)
        # Only a person's `work` (a change of the Nova) ends this wait; look again hourly.
        return Wait(now + HELD_RECHECK_S, why, critical_cuts=False, planned=False)

    def _next_work(self, now: float) -> Work | None:
        with self._store() as db:
            return db.read(lambda conn: session_start.next_work(conn, self.name, now))

    def _idle(self, nova: store.NovaRow, now: float) -> Step:
        if self.options.until_idle or self.options.once:
            return Finished("idle: nothing to do")
        profile = self._personality(nova)
        if (not self._dream_rolled and profile.dream_probability > 0
                and self._may_dream(nova, profile, now)):
            self._dream_rolled = True  # one roll of the dice per idle stretch
            if self.rng.random() < profile.dream_probability and self._dream(now):
                return Wait(self.clock.now(), "a dream ended early: work arrived")
        with self._store() as db:
            done = db.read(lambda conn: ledger.count(conn, nova.id))
        cycle = self._gap(profile, done).rest_s
        return Wait(now + cycle, f"idle: no work; looking again in {seconds(cycle)}")

    def _may_dream(self, nova: store.NovaRow, profile: personalities.Personality,
                   now: float) -> bool:
        """Whether a dream is due (dreams.due: the interval, the reflection rule); read
        from the database, so a restarted supervisor does not dream again at once."""
        with self._store() as db:
            return db.read(lambda conn: dreaming.due(conn, self.config, nova.id,
                                                   profile.reflection_every, now)) is None

    def _dream(self, now: float) -> bool:
        """Dream while idle; True when work arrived (a wake, an item, a restart request,
        a stop) and ended the dream early: the next pass takes it at once."""
        def undisturbed() -> bool:
            return not self.stop.is_set() and self._next_work(self.clock.now()) is None

        try:
            result = dreaming.dream(self.home, self.config, self.name, now, trigger="supervisor",
                                  should_continue=undisturbed, clock=self.clock.now)
        except (TransitionRefused, DreamRunning) as exc:
            self._emit("dream", f"no dream: {exc.message}")
            return False
        self._emit("dream", f"dream {result.id} {result.status}: {result.summary} "
                            f"(`torchsm dream show {result.id}`)",
                   dream=result.id, status=result.status, insights=result.insight_count)
        return result.status == dreaming.INTERRUPTED

    def _why_not(self, request: admission.Request, now: float) -> admission.Refusal | None:
        """Why the session may not start now (admission.why_not), on facts read now."""
        with self._store() as db:
            facts, refusal = db.read(
                lambda conn: admission.check(conn, self.config, self.name, request, now))
        self._usage_note = _usage_note(facts.usage)
        return refusal

    def _refused(self, refusal: admission.Refusal, work: Work, now: float) -> Step:
        """What a refusal does: a usage limit holds every Nova of the account, a spent
        budget cools the Nova, a person's hold waits for the person; the rest is waited
        out (a critical wake cuts the rhythm's rest and quiet hours short)."""
        if refusal.rule is admission.Rule.USAGE_LIMIT:
            return self._hold_account(refusal, now)
        if refusal.rule in (admission.Rule.SESSION_BUDGET, admission.Rule.COST_BUDGET):
            return self._cool_until(refusal.why, refusal.until, now)
        if refusal.rule is admission.Rule.HELD:
            return self._held(refusal.why, now)
        cuts = refusal.rule.yields_to_critical and not work.critical
        return Wait(refusal.until, refusal.why, critical_cuts=cuts)

    def _hold_account(self, refusal: admission.Refusal, now: float) -> Wait:
        """At `stop_utilization` or a rejected window: every Nova on the account holds
        until the reset plus the margin; only a change of this Nova ends the wait early."""
        def members(conn) -> list[store.NovaRow]:
            return store.novas_on_account(conn, store.nova_named(conn, self.name).account)

        stop = pacing.Verdict("stop", refusal.until, refusal.why, 1.0)
        with self._store() as db:
            held = db.read(members)
        for result in limits.hold(self.home, self.config, held, stop, now):
            if result.nova == self.name and result.recorded:
                self._emit_cooled(result)
        return Wait(refusal.until, admission.waiting_why("cooling", refusal.until, refusal.why),
                    critical_cuts=False)

    def _cool_until(self, why: str, until: float | None, now: float) -> Wait:
        """Cool the Nova (never shorter than the backoff) and wait it out; only a change
        of the Nova ends the wait early."""
        cooled = novas.safety_cool(self.home, self.config, self.name, reason=why,
                                   until=until, now=now, rng=self.rng)
        self._emit_cooled(cooled)
        return Wait(cooled.until, admission.waiting_why(cooled.target, cooled.until, why),
                    critical_cuts=False)

    # --- running a session -----------------------------------------------------------------

    def _run_session(self, taken: Taken) -> Ran:
        self._dream_rolled = False
        self._plan("running", None, f"session {taken.session_id} running ({session_start.describe(taken)})",
                   session=taken.session_id, session_started_at=self.clock.now())
        self._emit("session.started", f"session {taken.session_id} started: {session_start.describe(taken)}",
                   session=taken.session_id, kind=taken.kind,
                   item=taken.item.id if taken.item else None)
        outbox.deliver(self.home, self.config, taken.at)  # session.started, committed with it
        run, unstored = launch.launch(self.home, self.config, self._load_nova(),
                                            taken, self._agent_for(taken))
        if taken.cluster is not None:
            run = self.cluster.stopped_for_the_lease(run)
        for warning in ledger.checked_report(run.output.result or {},
                                             run.output.started_model)[1]:
            self._emit("warning", f"result: {warning}")
        verdict = outcome.judge(run, crash_window_s=self.config.supervisor.crash_window_s,
                                now=self.clock.now())
        self._decide_cluster(taken, verdict)
        self._settle(taken, run, verdict, unstored)
        if taken.cluster is not None:
            self.cluster.settle_left()
        run_files.remove_session_files(self.home, taken.session_id)  # settled: the record served
        return Ran(taken.session_id, verdict)

    def _agent_for(self, taken: Taken) -> launch.Agent:
        """A cluster item's agent is also stopped when this host's lease is at risk (the
        server away): another host may take the item over once the lease ends."""
        if taken.cluster is None:
            return self._agent
        cluster = self.cluster

        def should_stop() -> bool:
            if self.stop.is_set():
                return True
            if cluster.at_risk():
                self._emit("warning", f"session {taken.session_id}: stopped: no heartbeat "
                                      "for too long, the cluster lease is at risk")
                return True
            return False

        return dataclasses.replace(self._agent, should_stop=should_stop)

    def _decide_cluster(self, taken: Taken, verdict: Verdict) -> None:
        """The cluster item's fate on disk before the session's end is recorded (given to
        the server after it: a supervisor killed between them leaves the fate)."""
        if taken.cluster is None:
            return
        counted = verdict.failed and verdict.outcome not in settle.NOT_THE_ITEMS_FAULT
        fate = cluster_turns.fate_of(verdict.outcome, counted)
        self.cluster.decide(taken.cluster, taken.session_id, fate, verdict.error or "")

    def _settle(self, taken: Taken, run: session.SessionRun, verdict: Verdict,
                unstored: list[dict[str, Any]]) -> None:
        """Record the end, finish or release the work, answer a failure (settle.py); a
        529 only delays the next start."""
        now = self.clock.now()
        settled = self.settler.settle(taken, run, verdict, unstored, now)
        self._emit("session.ended", settle.ended_text(taken, run, verdict, settled.released),
                   session=taken.session_id, outcome=verdict.outcome.value,
                   exit_status=run.exit_status, duration_s=round(run.duration_s, 3),
                   error=verdict.error, released=[list(r) for r in settled.released])
        outbox.deliver(self.home, self.config, now)  # session.ended, committed with the end
        backing_off = settled.response.kind is Kind.BACK_OFF  # a 529, whoever heard it
        self._overload_streak = self._overload_streak + 1 if backing_off else 0
        if backing_off:
            self._back_off_overloaded(now)

    def _back_off_overloaded(self, now: float) -> None:
        """A 529 is the provider's load, not this Nova's limit: wait a little, longer
        each time in a row, without cooling the Nova."""
        pause = safety.cooldown_seconds(self._overload_streak - 1, self.config.safety,
                                        self.rng)
        self._not_before = now + pause
        self._emit("backoff", f"API overloaded: no start before {format_time(self._not_before)}",
                   until=format_time(self._not_before))

    def _emit_cooled(self, cooled: novas.TransitionResult) -> None:
        why = admission.waiting_why(cooled.target, cooled.until, cooled.reason)
        self._emit("cool", why, state=cooled.target, until=format_time(cooled.until),
                   reason=cooled.reason)
        self._last_wait_why = why  # the wait that follows says nothing new

    # --- waiting ---------------------------------------------------------------------------

    def _wait(self, wait: Wait) -> None:
        """Sleep until `wait.until`; return early on a stop, a change of the Nova (a forced
        `work`, a restart request) or, where allowed, a due critical wake."""
        self._plan("waiting", wait.until if wait.planned else None, wait.why)
        if wait.why != self._last_wait_why:
            next_start = format_time(wait.until) if wait.planned else None
            self._emit("wait", f"next start {next_start or 'not planned'}: {wait.why}",
                       next_start=next_start, why=wait.why)
            self._last_wait_why = wait.why
        marker = self._marker()
        while not self.stop.is_set():
            now = self.clock.now()
            if now >= wait.until:
                return
            if self.watch.changed() and self._cut_short(wait, marker, now):
                return
            self._tick(now)
            self.clock.sleep(min(self.poll_s, wait.until - now))

    def _tick(self, now: float) -> None:
        """While waiting: touch the plan now and then (a supervisor silent for `[alerts]
        heartbeat_s` has stopped), and evaluate the alert conditions."""
        if now >= self._next_beat:
            self._next_beat = now + conditions.HEARTBEAT_EVERY_S
            run_files.touch_plan(self.home, self.name, now)
        if now >= self._next_alerts:
            self._next_alerts = now + self.config.alerts.evaluate_every_s
            self._evaluate_alerts(now)
        self._report_deliveries()

    def _evaluate_alerts(self, now: float) -> None:
        # Alerts serve a person; a failure here must never stop supervision.
        try:
            evaluation = conditions.evaluate(self.home, self.config, now)
        except Exception as exc:  # noqa: BLE001 - reported, and tried again later
            self._emit("warning", f"alerts not evaluated: {type(exc).__name__}: {exc}")
            return
        for alert in evaluation.raised:
            self._emit("alert", f"alert {alert.id} raised: {alert.message}", key=alert.key)
        self.courier.start_round()  # aside: a hanging command never holds this loop

    def _report_deliveries(self) -> None:
        for line in self.courier.reports():
            self._emit("warning", line)

    def _marker(self) -> tuple | None:
        """What ends any wait when it changes: the Nova's state and `until`, a restart
        request. None when the database could not be read at this instant."""
        def read(conn) -> tuple:
            nova = store.load_nova(conn, self.name)
            if nova is None:
                return (None,)
            return nova.state, nova.until, store.restart_request(conn, nova.id)

        return self.watch.read(read)

    def _cut_short(self, wait: Wait, marker: tuple | None, now: float) -> bool:
        current = self._marker()
        if current is None:
            return False  # unreadable this instant: the next poll looks again
        if current != marker:
            return True
        if not wait.critical_cuts:
            return False
        due = self.watch.read(lambda conn: wake.next_due_in(conn, self.name, now))
        return due is not None and due.tier is Tier.CRITICAL

    # --- plumbing ----------------------------------------------------------------------------

    def _store(self) -> store.Store:
        return store.open_store(self.home, self.config.db.lock_timeout_s)

    def _nova_id(self, conn) -> int:
        nova = store.nova_named(conn, self.name)
        return nova.id

    def _gap(self, profile: personalities.Personality, sessions_done: int) -> rhythm.Gap:
        return rhythm.gap(profile, sessions_done, self.load(),
                          self.config.supervisor.load_stretch_above)

    def _personality(self, nova: store.NovaRow) -> personalities.Personality:
        return personalities.get_personality(nova.personality, self.config.personalities)

    def _recover_abandoned(self) -> None:
        """Before anything starts: what a dead predecessor left (recovery.py)."""
        recovery.recover(self.home, self.config, self.name, self.clock.now(), self._emit,
                         own=True, should_stop=self.stop.is_set,
                         on_wait=lambda why: self._plan("waiting", None, why))

    def _recover_others(self, now: float) -> None:
        """Now and then: what other Novas' dead supervisors hold (a shared item is free
        at once, not after its lease)."""
        if now < self._next_recovery:
            return
        self._next_recovery = now + RECOVER_OTHERS_EVERY_S
        recovery.recover_others(self.home, self.config, self.name, now, self._emit)

    def _plan(self, state: str, next_start: float | None, why: str, **extra: Any) -> None:
        run_files.write_plan(self.home, self.name, {
            "nova": self.name, "pid": os.getpid(), "state": state,
            "next_start": format_time(next_start), "why": why,
            "updated_at": format_time(self.clock.now()),
            "command": list(self.options.command), "usage": self._usage_note, **extra})

    def _emit(self, event: str, message: str, **data: Any) -> None:
        self._report({"event": event, "nova": self.name,
                      "at": format_time(self.clock.now()), "message": message, **data})


def _usage_note(verdict: pacing.Verdict) -> dict[str, Any] | None:
    if verdict.kind == "ok":
        return None
    return {"verdict": verdict.kind, "why": verdict.why, "until": format_time(verdict.until),
            "pressure": round(verdict.pressure, 3)}


def seconds(value: float) -> str:
    """A duration for people: whole seconds, tenths below ten."""
    return f"{value:.0f}s" if value >= 10 else f"{value:.2g}s"
