"""Agent processes: start one session of an agent CLI and understand what it said.

`run_session` is the only code in torchsm that starts an agent process (the supervisor
calls it; hooks never do). It reads the child's stdout line by line as it comes, so a
session of any length costs constant memory and the child never blocks on a full pipe.
`SessionOutput` turns those lines into meaning: Claude Code's `--output-format json` /
`stream-json --verbose` objects (result, rate_limit_event, system/api_retry); any other
agent CLI by exit status and the tail of its text.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

PROMPT_PLACEHOLDER = "{prompt}"
TAIL_LINES = 40


def build_argv(template: list[str], prompt: str) -> tuple[list[str], bool]:
    """COMMAND with `{prompt}` arguments replaced; (argv, prompt_goes_on_stdin)."""
    if not template:
        raise ValueError("no agent command given")
    uses_placeholder = any(PROMPT_PLACEHOLDER in arg for arg in template)
    argv = [arg.replace(PROMPT_PLACEHOLDER, prompt) for arg in template]
    return argv, not uses_placeholder


@dataclass
class SessionOutput:
    """What an agent's stdout said, line by line."""

    result: dict[str, Any] | None = None
    rate_limit_events: list[dict[str, Any]] = field(default_factory=list)
    api_retries: list[dict[str, Any]] = field(default_factory=list)
    last_assistant_text: str | None = None
    lines: int = 0
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))

    def feed(self, line: str) -> None:
        self.lines += 1
        stripped = line.strip()
        if not stripped:
            return
        self.tail.append(stripped[:2000])
        if not stripped.startswith("{"):
            return
        try:
            obj = json.loads(stripped)
        except ValueError:
            return
        if isinstance(obj, dict):
            self._interpret(obj)

    def _interpret(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "result":
            self.result = obj
        elif kind == "rate_limit_event":
            self.rate_limit_events.append(obj.get("rate_limit_info") or {})
        elif kind == "system" and obj.get("subtype") == "api_retry":
            self.api_retries.append(obj)
        elif kind == "assistant":
            text = _assistant_text(obj)
            if text:
                self.last_assistant_text = text

    @property
    def text(self) -> str:
        """The human-readable end of the session: the result text, else the output tail."""
        if self.result and isinstance(self.result.get("result"), str):
            return self.result["result"]
        return "\n".join(self.tail)


def _assistant_text(obj: dict[str, Any]) -> str | None:
    content = (obj.get("message") or {}).get("content") or []
    texts = [block.get("text", "") for block in content
             if isinstance(block, dict) and block.get("type") == "text"]
    return "\n".join(t for t in texts if t) or None


@dataclass
class SessionRun:
    """One finished agent process."""

    argv: list[str]
    started_at: float
    ended_at: float
    exit_status: int | None  # negative: killed by that signal
    timed_out: bool
    stopped: bool  # ended by our SIGTERM (supervisor shutting down)
    output: SessionOutput
    stderr_tail: str

    @property
    def duration_s(self) -> float:
        return self.ended_at - self.started_at


def run_session(argv: list[str], *, env: dict[str, str], cwd: str | None = None,
                stdin_text: str | None = None, timeout_s: float = 3600,
                grace_s: float = 10, should_stop: Callable[[], bool] = lambda: False,
                on_line: Callable[[str], None] | None = None,
                clock: Callable[[], float] = time.time) -> SessionRun:
    """Run one agent session to its end, its timeout, or until `should_stop()` says so.

    The child runs in its own process group so a timeout or shutdown reaches the whole
    tree it started: SIGTERM, then SIGKILL after `grace_s`.
    """
    output = SessionOutput()
    started = clock()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, text=True, encoding="utf-8",
                            errors="replace", start_new_session=True,
                            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1)
    stderr_tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    readers = [_pump(proc.stdout, lambda line: (output.feed(line), on_line and on_line(line))),
               _pump(proc.stderr, lambda line: stderr_tail.append(line.rstrip()[:2000]))]
    if stdin_text is not None:
        _write_stdin(proc, stdin_text)
    deadline = time.monotonic() + timeout_s
    timed_out = stopped = False
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            timed_out = True
            break
        if should_stop():
            stopped = True
            break
        try:
            proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        terminate_group(proc, grace_s)
    for reader in readers:
        reader.join(timeout=5)
    return SessionRun(argv, started, clock(), proc.returncode, timed_out, stopped, output,
                      "\n".join(stderr_tail))


def _pump(stream, handle: Callable[[str], None]) -> threading.Thread:
    def pump():
        for line in stream:
            handle(line)
        stream.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _write_stdin(proc: subprocess.Popen, text: str) -> None:
    def write():
        try:
            proc.stdin.write(text)
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the child did not want its stdin; that is its business

    threading.Thread(target=write, daemon=True).start()


def terminate_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it is still there."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
