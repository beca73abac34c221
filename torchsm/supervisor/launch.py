"""Launching the agent of a session: its argv (the prompt as an argument or on stdin), its
environment (which Nova, which home, which item, and the supervisor's mark its hooks
check), its pid in the ledger as soon as it runs, and its usage signals stored as they are
read (agent/reader.py), so the hooks of the same session decide on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torchsm.agent import orphans, session
from torchsm.agent.log import exit_words
from torchsm.agent.reader import SessionReader
from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.storage import run_files, store
from torchsm.supervisor.session_start import Taken, describe
from torchsm.usage import ledger


@dataclass(frozen=True)
class Agent:
    """How to run a Nova's agent: its command and where, and what the loop lends it."""

    command: tuple[str, ...]
    cwd: str | None
    claude_code: bool  # whether its usage and cost signals are read
    base_env: dict[str, str]
    mark: str  # orphans.supervisor_mark(): the hooks of its agents check it lives
    clock: Callable[[], float]
    should_stop: Callable[[], bool]
    emit: Callable[..., None]


def launch(home: Home, config: Config, nova: store.NovaRow, taken: Taken,
           agent: Agent) -> tuple[session.SessionRun, list[dict[str, Any]]]:
    """Run the session's agent to its end. Returns the run and the usage signals that
    could not be stored meanwhile."""
    argv, prompt_on_stdin = session.build_argv(list(agent.command), taken.prompt)
    cfg = config.supervisor
    started = agent.clock()
    heading = f"{format_time(started)} ({describe(taken)})"
    if agent.claude_code:
        run_files.declare_claude_code(home, taken.session_id)
    with SessionReader(home, config, nova, taken.session_id, heading, agent.emit,
                       agent.clock) as reader:
        try:
            run = session.run_session(
                argv, env=child_env(home, nova.name, taken, agent), cwd=agent.cwd,
                stdin_text=taken.prompt if prompt_on_stdin else None,
                timeout_s=cfg.session_timeout_s, grace_s=cfg.stop_grace_s,
                should_stop=agent.should_stop, on_text=reader.text, on_error_text=reader.text,
                on_signal=reader.signal,
                on_start=lambda pid: _record_pid(home, config, taken, pid),
                session_files=str(run_files.session_files(home, taken.session_id)),
                claude_code=agent.claude_code, clock=agent.clock,
                orphaned_for_s=_orphan_limit(config, taken), beat=_beat(home, config, taken))
        except OSError as exc:  # the command vanished or is not executable any more
            run = session.SessionRun(argv, started, agent.clock(), None, False, False,
                                    session.SessionOutput(), f"cannot start: {exc}")
        reader.log.footer(taken.session_id, f"{format_time(run.ended_at)} {how_it_ended(run)}")
        return run, reader.unstored


def _orphan_limit(config: Config, taken: Taken) -> float | None:
    """A cluster item's agent stops soon after its supervisor dies (before another host
    may take the item over); any other runs its session out."""
    if taken.cluster is None:
        return None
    from torchsm.cluster.membership import orphan_limit_s

    cluster = config.cluster
    return orphan_limit_s(cluster.lease_s, cluster.heartbeat_s, config.supervisor.stop_grace_s)


def _beat(home: Home, config: Config, taken: Taken) -> tuple[str, float] | None:
    """A cluster item's agent stops when its host's last acknowledged beat is too old,
    whatever its supervisor does (paused, it cannot stop it)."""
    if taken.cluster is None:
        return None
    from torchsm.cluster.membership import beat_limit_s

    cluster = config.cluster
    return (str(run_files.beat_path(home)),
            beat_limit_s(cluster.lease_s, cluster.heartbeat_s, config.supervisor.stop_grace_s))


def how_it_ended(run: session.SessionRun) -> str:
    """For the log's footer: the exit as the agent's process ended (the outcome the
    supervisor judges from it is in the ledger: `torchsm sessions`)."""
    if run.timed_out:
        ended = "timed out: stopped"
    elif run.stopped:
        ended = "stopped with its supervisor"
    elif run.exit_status is None:
        ended = run.stderr_tail or "did not start"
    else:
        ended = exit_words(run.exit_status)
    return f"{ended} after {run.duration_s:.1f} s"


def child_env(home: Home, name: str, taken: Taken, agent: Agent) -> dict[str, str]:
    """The agent's environment: the supervisor's own, and who and what it is for."""
    env = dict(agent.base_env)
    env.update(TORCHSM_NOVA=name, TORCHSM_HOME=str(home.path),
               TORCHSM_PROMPT=taken.prompt, TORCHSM_SESSION=str(taken.session_id))
    env[orphans.SUPERVISOR_ENV] = agent.mark
    env.pop("TORCHSM_ITEM", None)
    env.pop("TORCHSM_CLUSTER_ITEM", None)
    if taken.item is not None:
        env["TORCHSM_ITEM"] = str(taken.item.id)
    if taken.cluster is not None:
        env["TORCHSM_CLUSTER_ITEM"] = taken.cluster.item_id
    return env


def _record_pid(home: Home, config: Config, taken: Taken, pid: int) -> None:
    ticks = orphans.start_ticks(pid)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        db.write(lambda conn: ledger.record_agent(conn, taken.session_id, pid, ticks))
