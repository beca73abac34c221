"""The supervisor (`torchsm run`): the only code that starts agent sessions.

One loop per Nova, one pass of it per `step(now)`:
1. while the Nova is cooling or meditating, wait (a critical wake, which forces the Nova
   back to work, cuts the wait short);
2. pick the prompt: a due wake signal, else a restart request or the next work item, else
   idle: dream (torchsm.dreams) at most once per [dreams] interval_s, after the
   personality's `reflection_every` sessions, with its `dream_probability` once per idle
   stretch; then wait one rhythm cycle;
3. start the agent only within the limits: its account's usage windows (pacing.py: at
   `stop_utilization` or a rejected window every Nova on the account holds until the
   reset; from `slow_utilization` the rest of the window is spread over the time to the
   reset, and near its end the account's Novas share it instead of racing),
   `max_sessions_per_hour` in any sliding hour and the account's `max_cost_usd_per_day`
   in any 24 hours (counted from the ledger; all checked again in the transaction that
   records the start), and the rhythm's minimum gap. A spent budget cools the Nova until
   the window frees;
4. run it, storing its usage signals as they are read (session_reader.py), so the hooks
   of the same session decide on them;
5. settle it (settle.py): the item done on success, back to the queue with the attempt
   counted on failure; how it ended answered once (responses.py), unless a hook of the
   session answered it first; a 529's answer only delays the next start.
`run()` loops over steps and does the waiting. Time and sleep come from a Clock, so the
policies are testable without waiting.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from torchsm import (accounts, agents, alert_delivery, alerts, budget, dreams, ledger, limits,
                     mirror, novas, orphans, outbox, outcome, pacing, personalities, prompts,
                     recovery, rhythm, runfiles, safety, settle, store, wake, workqueue)
from torchsm.clock import format_time
from torchsm.config import Config, Home, cost_limit_for, usage_for
from torchsm.session_reader import SessionReader
from torchsm.errors import DatabaseLocked, DreamRunning, TransitionRefused
from torchsm.machine import WAITING_STATES, Event, State
from torchsm.outcome import Verdict
from torchsm.responses import Kind
from torchsm.tiers import Tier
from torchsm.watch import ChangeWatch

POLL_S = 0.25  # how often a wait looks for a critical wake (one PRAGMA when nothing changed)
LEASE_MARGIN_S = 60  # a claim outlives the longest session, so nobody else gets the item
LOCKED_RETRIES = 5  # consecutive passes that found the database locked before giving up
HELD_RECHECK_S = 3600
RECOVER_OTHERS_EVERY_S = 10.0
DREAM_LOOK_S = 1.0  # how soon to look again while someone else's dream runs

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
    agent_output: str = agents.AUTO  # claude-code | plain | auto (from COMMAND)

    @property
    def claude_code(self) -> bool:
        """Whether the agent's usage and cost signals are read (agents.speaks_claude_code)."""
        return agents.speaks_claude_code(self.command, self.agent_output)


@dataclass(frozen=True)
class Work:
    """What the next session is for, before anything is taken."""

    kind: str  # wake | restart | item
    signal: wake.Signal | None = None
    restart: tuple[float, str | None] | None = None  # (requested at, reason)

    @property
    def critical(self) -> bool:
        return self.signal is not None and self.signal.tier is Tier.CRITICAL


@dataclass(frozen=True)
class Taken:
    """Work taken for a session: the ledger row exists and the item (if any) is claimed."""

    session_id: int
    kind: str
    prompt: str
    item: workqueue.WorkItem | None
    signal_id: int | None
    at: float


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
    """Supervises one Nova. Take its lock first (`runner.supervise` does)."""

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
        self._mark = orphans.supervisor_mark()  # the hooks of its agents check it lives
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
        self.courier = alert_delivery.Courier(home, config, clock.now, self.stop)
        self.settler = settle.Settler(home, config, name, rng=self.rng, emit=self._emit,
                                      on_cooled=self._emit_cooled)

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Step and wait until an option, a signal or idleness ends the run."""
        self.watch = ChangeWatch(self.home)
        self._recover_abandoned()
        sessions, why = 0, "stopped"
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
            self.courier.close()
            self._report_deliveries()
            runfiles.remove_plan(self.home, self.name)
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
        if _waiting(nova, now):
            if self.options.until_idle and self._next_work(now) is None:
                return Finished("idle: nothing to do")
            # Only a change of the Nova ends this wait early: a critical wake forces it
            # back to work when it is sent, and a critical signal that was pending before
            # the cooldown began does not break it.
            return Wait(nova.until, _waiting_why(nova.state, nova.until, nova.reason),
                        critical_cuts=False)
        if _held_for_a_person(nova, self.config):
            return self._held(nova, now)
        if nova.state == State.DREAMING.value and dreams.running(self.home, self.name):
            # a person's `torchsm dream` (a second or so): it sends the Nova back itself
            return Wait(now + DREAM_LOOK_S, "dreaming", planned=False)
        if nova.state != State.WORKING.value:
            self._resume(nova, now)
        self._recover_others(now)
        work = self._next_work(now)
        if work is None:
            return self._idle(nova, now)
        blocked = self._blocked(nova, work, now)
        if blocked is not None:
            return blocked
        taken = self._take(nova, work, now)
        if taken is None:  # someone else took it meanwhile: look again at once
            return Wait(now, "the work was taken meanwhile")
        return self._run_session(taken)

    # --- deciding ------------------------------------------------------------------------

    def _load_nova(self) -> store.NovaRow:
        with self._store() as db:
            nova = db.read(lambda conn: store.nova_named(conn, self.name))
        return nova

    def _resume(self, nova: store.NovaRow, now: float) -> None:
        """Back to work: a wait that is over, or a dream or compaction that no running
        session owns any more."""
        reason = ("the wait is over" if nova.state in _WAITING_VALUES
                  else f"no session is {nova.state}")
        try:
            novas.transition(self.home, self.config, self.name, Event.WORK,
                             reason=f"supervisor: {reason}", now=now)
        except TransitionRefused:
            return  # changed meanwhile; the next pass sees how
        self._emit("resume", f"{nova.state} -> working ({reason})")

    def _held(self, nova: store.NovaRow, now: float) -> Step:
        what = ("held" if novas.held_for_a_person(nova.limit_hold)
                else f"held for a usage limit ({nova.limit_hold}); auto_resume is off")
        why = f"{what}: `torchsm transition {self.name} work` resumes it"
        if self.options.until_idle or self.options.once:
            return Finished(why)
        # Only a person's `work` (a change of the Nova) ends this wait; look again hourly.
        return Wait(now + HELD_RECHECK_S, why, critical_cuts=False, planned=False)

    def _next_work(self, now: float) -> Work | None:
        def peek(conn) -> Work | None:
            signal_due = wake.next_due_in(conn, self.name, now)
            if signal_due is not None:
                return Work("wake", signal=signal_due)
            nova = store.load_nova(conn, self.name)
            restart = store.restart_request(conn, nova.id) if nova else None
            if restart is not None:
                return Work("restart", restart=restart)
            if workqueue.has_claimable(conn, self.name, now):
                return Work("item")
            return None

        with self._store() as db:
            return db.read(peek)

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
            return db.read(lambda conn: dreams.due(conn, self.config, nova.id,
                                                   profile.reflection_every, now)) is None

    def _dream(self, now: float) -> bool:
        """Dream while idle; True when work arrived (a wake, an item, a restart request,
        a stop) and ended the dream early: the next pass takes it at once."""
        def undisturbed() -> bool:
            return not self.stop.is_set() and self._next_work(self.clock.now()) is None

        try:
            result = dreams.dream(self.home, self.config, self.name, now, trigger="supervisor",
                                  should_continue=undisturbed, clock=self.clock.now)
        except (TransitionRefused, DreamRunning) as exc:
            self._emit("dream", f"no dream: {exc.message}")
            return False
        self._emit("dream", f"dream {result.id} {result.status}: {result.summary} "
                            f"(`torchsm dream show {result.id}`)",
                   dream=result.id, status=result.status, insights=result.insight_count)
        return result.status == dreams.INTERRUPTED

    def _blocked(self, nova: store.NovaRow, work: Work, now: float) -> Wait | None:
        """Why the session cannot start yet: the account's usage windows (a limit holds
        every Nova on it; pacing spreads the rest of a window), a spent budget (which
        cools the Nova), the rhythm's gap, or quiet hours. None when it may start now."""
        with self._store() as db:
            room = db.read(lambda conn: self._room(conn, nova, now))
        self._usage_note = _usage_note(room.usage)
        if room.usage.kind == "stop":
            return self._hold_account(nova, room.usage, now)
        if room.frees_at is not None:
            return self._cool_for_budget(room, now)
        if room.cost_frees_at is not None:
            return self._cool_for_cost(room, now)
        if self._not_before > now:
            return Wait(self._not_before, f"API overloaded: backing off until "
                                          f"{format_time(self._not_before)}", critical_cuts=False)
        if room.usage.kind == "pace":
            return Wait(room.usage.until, f"usage pacing: {room.usage.why}",
                        critical_cuts=False)
        if work.critical and room.floor_at > now:
            return Wait(room.floor_at, f"rhythm: {room.gap.why}", critical_cuts=False)
        if not work.critical and room.rest_at > now:
            # a critical wake meanwhile ends this wait, then waits for the floor only
            return Wait(room.rest_at, f"rhythm: {room.gap.why}")
        if work.kind != "wake":  # a due signal has had quiet hours applied already
            quiet_end = rhythm.after_quiet_hours(now, self.config.wake.quiet_hours)
            if quiet_end is not None:
                return Wait(quiet_end, f"quiet hours ({self.config.wake.quiet_hours}) "
                                       f"until {format_time(quiet_end)}")
        return None

    def _room(self, conn, nova: store.NovaRow, now: float) -> "_Room":
        limit = self.config.supervisor.max_sessions_per_hour
        starts = ledger.starts_since(conn, nova.id, now - budget.WINDOW_S)
        gap = self._gap(self._personality(nova), ledger.count(conn, nova.id))
        last = ledger.last_end(conn, nova.id)
        verdict = limits.verdict(conn, self.config, nova.account, now, nova.id)
        costs = ledger.costs_since(conn, nova.account, now - budget.COST_WINDOW_S)
        cost_limit = cost_limit_for(self.config, nova.account)
        return _Room(budget.window_frees_at(starts, now, limit), len(starts), gap,
                     now if last is None else last + gap.floor_s,
                     now if last is None else last + gap.rest_s, verdict,
                     budget.cost_frees_at(costs, now, cost_limit),
                     budget.cost_in_window(costs, now), cost_limit)

    def _hold_account(self, nova: store.NovaRow, verdict: pacing.Verdict, now: float) -> Wait:
        """At `stop_utilization` or a rejected window: every Nova on the account holds
        until the reset plus the margin; only a change of this Nova ends the wait early."""
        with self._store() as db:
            members = db.read(lambda conn: store.novas_on_account(conn, nova.account))
        for result in limits.hold(self.home, self.config, members, verdict, now):
            if result.nova == self.name and result.recorded:
                self._emit_cooled(result)
        return Wait(verdict.until, _waiting_why("cooling", verdict.until, verdict.why),
                    critical_cuts=False)

    def _cool_for_cost(self, room: "_Room", now: float) -> Wait:
        limit = room.cost_limit
        return self._cool_until(
            f"cost budget spent: ${room.cost_usd:.2f} of ${limit:.2f} in the last 24 h; "
            f"room again at {format_time(room.cost_frees_at)}", room.cost_frees_at, now)

    def _cool_for_budget(self, room: "_Room", now: float) -> Wait:
        limit = self.config.supervisor.max_sessions_per_hour
        return self._cool_until(
            f"session budget spent: {room.recent} of {limit} in the last hour; "
            f"room again at {format_time(room.frees_at)}", room.frees_at, now)

    def _cool_until(self, why: str, until: float | None, now: float) -> Wait:
        """Cool the Nova (never shorter than the backoff) and wait it out; only a change
        of the Nova ends the wait early."""
        cooled = novas.safety_cool(self.home, self.config, self.name, reason=why,
                                   until=until, now=now, rng=self.rng)
        self._emit_cooled(cooled)
        return Wait(cooled.until, _waiting_why(cooled.target, cooled.until, why),
                    critical_cuts=False)

    # --- taking the work -----------------------------------------------------------------

    def _take(self, nova: store.NovaRow, work: Work, now: float) -> Taken | None:
        if self.stop.is_set():
            return None
        item = None
        if work.kind in ("item", "restart"):
            with workqueue.open_queue(self.home, self.config) as queue:
                item = queue.try_claim(self.name, lease_s=self._lease_s(), now=now)
            if item is None and work.kind == "item":
                return None
        prompt = _prompt(work, item, self.name)

        def record(conn) -> int | None:
            # The budget and the gap once more, in the transaction that records the start:
            # whatever happened since the check, no path starts a session beyond them.
            room = self._room(conn, nova, now)
            spent = room.frees_at is not None or room.cost_frees_at is not None
            if spent or room.floor_at > now or room.usage.kind != "ok":
                return None
            # the request this start sends, counted until its answer is read
            accounts.grant(conn, nova.account, nova.id, now)
            if work.signal is not None and not wake.deliver_in(conn, work.signal.id, now):
                return None
            if work.restart is not None:
                store.clear_restart_request(conn, nova.id, work.restart[0])
            session_id = ledger.start(conn, nova_id=nova.id, kind=work.kind, prompt=prompt,
                                      item_id=item.id if item else None,
                                      signal_id=work.signal.id if work.signal else None, at=now)
            outbox.put(conn, self.config, mirror.OPS_STREAM, mirror.Entry.new(
                "session.started", self.name, {"session": session_id, "kind": work.kind,
                                               "item": item.id if item else None}, now))
            return session_id

        with self._store() as db:
            session_id = db.write(record)
            if session_id is None and item is not None:
                db.write(lambda conn: workqueue.release_claims_in(
                    conn, self.name, since=now, now=now, counted=False))
        if session_id is None:
            return None
        return Taken(session_id, work.kind, prompt, item,
                     work.signal.id if work.signal else None, now)

    def _lease_s(self) -> float:
        cfg = self.config.supervisor
        return max(self.config.queue.lease_s,
                   cfg.session_timeout_s + cfg.stop_grace_s + LEASE_MARGIN_S)

    # --- running a session -----------------------------------------------------------------

    def _run_session(self, taken: Taken) -> Ran:
        self._dream_rolled = False
        self._plan("running", None, f"session {taken.session_id} running ({_what(taken)})",
                   session=taken.session_id)
        self._emit("session.started", f"session {taken.session_id} started: {_what(taken)}",
                   session=taken.session_id, kind=taken.kind,
                   item=taken.item.id if taken.item else None)
        outbox.deliver(self.home, self.config, taken.at)  # session.started, committed with it
        run, unstored = self._start_agent(taken)
        for warning in ledger.checked_report(run.output.result or {})[1]:
            self._emit("warning", f"result: {warning}")
        verdict = outcome.judge(run, crash_window_s=self.config.supervisor.crash_window_s,
                                now=self.clock.now())
        self._settle(taken, run, verdict, unstored)
        runfiles.remove_session_files(self.home, taken.session_id)  # settled: the record served
        return Ran(taken.session_id, verdict)

    def _start_agent(self, taken: Taken) -> tuple[agents.SessionRun, list[dict[str, Any]]]:
        """Run the agent; its usage signals are stored as they are read (session_reader).
        Returns the run and the signals that could not be stored meanwhile."""
        argv, prompt_on_stdin = agents.build_argv(list(self.options.command), taken.prompt)
        cfg = self.config.supervisor
        started = self.clock.now()
        heading = f"session {taken.session_id} {format_time(started)} ({_what(taken)})"
        if self.options.claude_code:
            runfiles.declare_claude_code(self.home, taken.session_id)
        with SessionReader(self.home, self.config, self._load_nova(), heading, self._emit,
                           self.clock.now) as reader:
            try:
                run = agents.run_session(
                    argv, env=self._child_env(taken), cwd=self.options.cwd,
                    stdin_text=taken.prompt if prompt_on_stdin else None,
                    timeout_s=cfg.session_timeout_s, grace_s=cfg.stop_grace_s,
                    should_stop=self.stop.is_set, on_text=reader.text,
                    on_signal=reader.signal,
                    on_start=lambda pid: self._record_agent(taken, pid),
                    session_files=str(runfiles.session_files(self.home, taken.session_id)),
                    claude_code=self.options.claude_code, clock=self.clock.now)
            except OSError as exc:  # the command vanished or is not executable any more
                run = agents.SessionRun(argv, started, self.clock.now(), None, False, False,
                                        agents.SessionOutput(), f"cannot start: {exc}")
            return run, reader.unstored

    def _child_env(self, taken: Taken) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(TORCHSM_NOVA=self.name, TORCHSM_HOME=str(self.home.path),
                   TORCHSM_PROMPT=taken.prompt, TORCHSM_SESSION=str(taken.session_id))
        env[orphans.SUPERVISOR_ENV] = self._mark
        env.pop("TORCHSM_ITEM", None)
        if taken.item is not None:
            env["TORCHSM_ITEM"] = str(taken.item.id)
        return env

    def _settle(self, taken: Taken, run: agents.SessionRun, verdict: Verdict,
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
        why = _waiting_why(cooled.target, cooled.until, cooled.reason)
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
            self._next_beat = now + alerts.HEARTBEAT_EVERY_S
            runfiles.touch_plan(self.home, self.name, now)
        if now >= self._next_alerts:
            self._next_alerts = now + self.config.alerts.evaluate_every_s
            self._evaluate_alerts(now)
        self._report_deliveries()

    def _evaluate_alerts(self, now: float) -> None:
        # Alerts serve a person; a failure here must never stop supervision.
        try:
            evaluation = alerts.evaluate(self.home, self.config, now)
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

    def _record_agent(self, taken: Taken, pid: int) -> None:
        ticks = orphans.start_ticks(pid)
        with self._store() as db:
            db.write(lambda conn: ledger.record_agent(conn, taken.session_id, pid, ticks))

    def _plan(self, state: str, next_start: float | None, why: str, **extra: Any) -> None:
        runfiles.write_plan(self.home, self.name, {
            "nova": self.name, "pid": os.getpid(), "state": state,
            "next_start": format_time(next_start), "why": why,
            "updated_at": format_time(self.clock.now()),
            "command": list(self.options.command), "usage": self._usage_note, **extra})

    def _emit(self, event: str, message: str, **data: Any) -> None:
        self._report({"event": event, "nova": self.name,
                      "at": format_time(self.clock.now()), "message": message, **data})


@dataclass(frozen=True)
class _Room:
    """The budgets as they stand: when the hourly window frees (None: it has room), how
    many sessions it holds, the gap, when the floor and the rest end, what the usage
    windows say, and the day's cost."""

    frees_at: float | None
    recent: int
    gap: rhythm.Gap
    floor_at: float
    rest_at: float
    usage: pacing.Verdict
    cost_frees_at: float | None  # None: the day's cost budget has room (or is off)
    cost_usd: float  # reported in the last 24 hours on the account
    cost_limit: float  # the account's daily cost budget (0: none)


_WAITING_VALUES = tuple(s.value for s in WAITING_STATES)


def _usage_note(verdict: pacing.Verdict) -> dict[str, Any] | None:
    if verdict.kind == "ok":
        return None
    return {"verdict": verdict.kind, "why": verdict.why, "until": format_time(verdict.until),
            "pressure": round(verdict.pressure, 3)}


def _waiting(nova: store.NovaRow, now: float) -> bool:
    return nova.state in _WAITING_VALUES and nova.until is not None and nova.until > now


def seconds(value: float) -> str:
    """A duration for people: whole seconds, tenths below ten."""
    return f"{value:.0f}s" if value >= 10 else f"{value:.2g}s"


def _held_for_a_person(nova: store.NovaRow, config: Config) -> bool:
    """A hold whose wait is over that only a person lifts: an account error, or a usage
    limit with `auto_resume = false`."""
    return (bool(nova.limit_hold) and nova.state in _WAITING_VALUES
            and (novas.held_for_a_person(nova.limit_hold)
                 or not usage_for(config, nova.account).auto_resume))


def _waiting_why(state: str, until: float | None, reason: str | None) -> str:
    return f"{state} until {format_time(until)}" + (f" ({reason})" if reason else "")


def _prompt(work: Work, item: workqueue.WorkItem | None, nova: str) -> str:
    if work.signal is not None:
        return prompts.wake_prompt(work.signal.tier.value, work.signal.sender,
                                   work.signal.message, nova)
    if work.kind == "restart":
        return prompts.restart_prompt(work.restart[1] if work.restart else None, item)
    return prompts.item_prompt(item)


def _what(taken: Taken) -> str:
    if taken.item is not None:
        first_line = taken.item.text.splitlines()[0][:80]
        kind = "" if taken.kind == "item" else f"{taken.kind}, "
        return f"{kind}item {taken.item.id}: {first_line}"
    return f"{taken.kind}: {taken.prompt.splitlines()[0][:80]}"
