"""Agent processes: start one session of an agent CLI and understand what it said.

`run_session` is the only code in torchsm that starts an agent process (the supervisor
calls it; hooks never do). It reads the child's stdout line by line as it comes, so a
session of any length costs constant memory and the child never blocks on a full pipe.
`SessionOutput` turns those lines into meaning: Claude Code's `--output-format json` /
`stream-json --verbose` objects (result, rate_limit_event, system/api_retry, the system
init's model), read only
from an agent that speaks them (`speaks_claude_code`); any other agent CLI by exit
status and the tail of its text.
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

from torchsm.errors import AgentCommandError

PROMPT_PLACEHOLDER = "{prompt}"
TAIL_LINES = 40
READ_CHUNK = 1 << 16

# what an agent's stdout is declared to be (`torchsm run --agent-output`)
AUTO, CLAUDE_CODE, PLAIN = "auto", "claude-code", "plain"
_CLAUDE_JSON_FORMATS = ("stream-json", "json")


def speaks_claude_code(command: list[str] | tuple[str, ...], declared: str = AUTO) -> bool:
    """Whether COMMAND's stdout is Claude Code's JSON, whose usage and cost signals
    torchsm reads: as `declared`, else (`auto`) when COMMAND runs `claude` with
    `--output-format stream-json` or `json`.

    In those formats every line is an object Claude Code wrote, and whatever the task or
    the model says is a string inside one. In any other output (text mode, a shell
    wrapper, another CLI) a line of the task, echoed, would read as Claude Code's own:
    a rate_limit_event holding the account for days, a negative cost switching the
    budget off. So nothing is read from it but its exit status.
    """
    if declared != AUTO:
        return declared == CLAUDE_CODE
    return (bool(command) and os.path.basename(command[0]) == "claude"
            and _output_format(command) in _CLAUDE_JSON_FORMATS)


def _output_format(command: list[str] | tuple[str, ...]) -> str | None:
    """The value of COMMAND's last `--output-format` (the last one is the one that
    counts), or None."""
    found = None
    for i, arg in enumerate(command):
        if arg == "--output-format":
            found = command[i + 1] if i + 1 < len(command) else None
        elif arg.startswith("--output-format="):
            found = arg.partition("=")[2]
    return found


def check_template(template: list[str] | tuple[str, ...]) -> None:
    """AgentCommandError unless every `{prompt}` in COMMAND is a whole argument.

    Inside a larger argument (`sh -c 'echo {prompt}'`, `--prompt={prompt}`) the prompt's
    text would become part of something else, a shell script at worst: a work item or a
    wake message could then run commands. The prompt is only ever one argument of its own.
    """
    for arg in template:
        if PROMPT_PLACEHOLDER in arg and arg != PROMPT_PLACEHOLDER:
            raise AgentCommandError(
                f"{PROMPT_PLACEHOLDER} must be a whole argument, not part of {arg!r} (the "
                f"prompt's text could run as commands): pass {PROMPT_PLACEHOLDER} as an "
                f"argument of its own (sh -c 'echo \"$1\"' sh {PROMPT_PLACEHOLDER}), use "
                f"$TORCHSM_PROMPT, or leave it out to get the prompt on stdin")


def build_argv(template: list[str], prompt: str) -> tuple[list[str], bool]:
    """COMMAND with each `{prompt}` argument replaced by the prompt, verbatim, as one
    argument; (argv, prompt_goes_on_stdin). `{prompt}` inside a larger argument is
    refused (check_template)."""
    if not template:
        raise ValueError("no agent command given")
    check_template(template)
    uses_placeholder = PROMPT_PLACEHOLDER in template
    argv = [prompt if arg == PROMPT_PLACEHOLDER else arg for arg in template]
    return argv, not uses_placeholder


# Lines worth parsing at once; every other line is kept as text only. A marker inside a
# JSON string is escaped (\"result\"), so these match keys and type values, and a false
# positive costs one parse, not a wrong answer (_interpret checks the type).
_EAGER_MARKERS = ('"result"', '"rate_limit_event"', '"api_retry"')
# stream-json's system init (the session's model) comes before any assistant message: it
# is looked for only until one, so a long session's blocks pay no extra scan for it
_INIT_MARKER = '"init"'
_ASSISTANT_MARKER, _TEXT_MARKER = '"assistant"', '"text"'


@dataclass
class SessionOutput:
    """What an agent's stdout said, line by line.

    Parsing every line of a long stream-json session would cost more than the session's
    own output does (BENCHMARKS-usage.md): only the lines that can carry a result, a
    rate_limit_event or an api_retry (and, until the first assistant message, the system
    init) are parsed as they come, and the last assistant line with text is parsed when
    it is asked for. Only when `claude_code` (the agent speaks
    Claude Code's JSON: `speaks_claude_code`); any other agent's lines are its own words,
    kept as text.
    """

    claude_code: bool = False
    result: dict[str, Any] | None = None
    rate_limit_events: list[dict[str, Any]] = field(default_factory=list)
    api_retries: list[dict[str, Any]] = field(default_factory=list)
    started_model: Any = None  # the model the system init names (checked by the ledger)
    lines: int = 0
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    # told of each rate_limit_event's info and each api_retry object the moment it is read
    listener: Callable[[str, dict[str, Any]], None] | None = field(default=None, repr=False)
    _last_assistant_line: str | None = field(default=None, repr=False)
    _before_init: bool = field(default=True, repr=False)  # no init nor assistant line yet

    def feed(self, line: str) -> None:
        """One line of output."""
        self.feed_block(line if line.endswith("\n") else line + "\n")

    def feed_block(self, text: str) -> None:
        """Complete lines of output (each ending with a newline), as they came."""
        lines = text.splitlines()
        self.lines += len(lines)
        self.tail.extend(line.strip()[:2000] for line in lines[-TAIL_LINES:] if line.strip())
        if not self.claude_code:
            return
        if self._before_init and _INIT_MARKER in text:
            for line in lines:  # (a line the eager markers catch is parsed below)
                if _INIT_MARKER in line and not any(m in line for m in _EAGER_MARKERS):
                    self._parse(line.strip())
        if any(marker in text for marker in _EAGER_MARKERS):
            for line in lines:
                if any(marker in line for marker in _EAGER_MARKERS):
                    self._parse(line.strip())
        if _ASSISTANT_MARKER in text:
            self._before_init = False
            self._remember_assistant(lines)

    def _parse(self, line: str) -> None:
        if line.startswith("{"):
            obj = _json_object(line)
            if obj is not None:
                self._interpret(obj)

    def _remember_assistant(self, lines: list[str]) -> None:
        for line in reversed(lines):
            if _ASSISTANT_MARKER in line and _TEXT_MARKER in line and line.lstrip()[:1] == "{":
                if not any(marker in line for marker in _EAGER_MARKERS):
                    self._last_assistant_line = line.strip()
                return

    def _interpret(self, obj: dict[str, Any]) -> None:
        kind = obj.get("type")
        if kind == "result":
            self.result = obj
        elif kind == "rate_limit_event":
            info = obj.get("rate_limit_info")
            self.rate_limit_events.append(info if isinstance(info, dict) else {})
            self._tell("rate_limit_event", self.rate_limit_events[-1])
        elif kind == "system" and obj.get("subtype") == "api_retry":
            self.api_retries.append(obj)
            self._tell("api_retry", obj)
        elif kind == "system" and obj.get("subtype") == "init":
            self.started_model, self._before_init = obj.get("model"), False
        elif kind == "assistant" and _assistant_text(obj):
            self._last_assistant_line = json.dumps(obj)

    def _tell(self, kind: str, obj: dict[str, Any]) -> None:
        if self.listener is not None:
            self.listener(kind, obj)

    @property
    def last_assistant_text(self) -> str | None:
        """The text of the last assistant message that had any."""
        if self._last_assistant_line is None:
            return None
        obj = _json_object(self._last_assistant_line)
        return _assistant_text(obj) if obj and obj.get("type") == "assistant" else None

    @property
    def error_text(self) -> str:
        """Claude Code's own words on an error: the result's text when the result reports
        one (`is_error`). The one text a usage-limit or account message is read from: a
        model that says the same words in a turn that went well is answering, not
        refused."""
        result = self.result or {}
        said = result.get("result")
        return said if result.get("is_error") is True and isinstance(said, str) else ""

    @property
    def text(self) -> str:
        """The human-readable end of the session: the result text, else the output tail."""
        if self.result and isinstance(self.result.get("result"), str):
            return self.result["result"]
        return "\n".join(self.tail)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


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
                on_text: Callable[[str], None] | None = None,
                on_error_text: Callable[[str], None] | None = None,
                on_signal: Callable[[str, dict[str, Any]], None] | None = None,
                on_start: Callable[[int], None] | None = None,
                session_files: str | None = None, claude_code: bool = False,
                clock: Callable[[], float] = time.time,
                orphaned_for_s: float | None = None,
                beat: tuple[str, float] | None = None) -> SessionRun:
    """Run one agent session to its end, its timeout, or until `should_stop()` says so.

    The child runs in its own process group so a timeout or shutdown reaches the whole
    tree it started: SIGTERM, then SIGKILL after `grace_s`. `on_line` sees every line of
    stdout; `on_text` sees the same output in blocks of complete lines (cheaper),
    `on_error_text` stderr's;
    `on_signal` each rate_limit_event and api_retry as it is read (on the reader thread),
    only when `claude_code` (the agent speaks Claude Code's JSON);
    `on_start` the agent's pid once it runs. The agent is asked to die with this process
    (orphans.die_with_parent). With `session_files` the agent runs under its keeper
    (torchsm.agent.keeper), which writes there how it ended the moment it does and, should this
    process die, lets the agent finish its session (within `timeout_s`) and keeps what
    it writes meanwhile (within `orphaned_for_s` of this process's death, when given);
    `beat` (a cluster session's beat file, and how old it may get) has the keeper stop
    the agent once its host's lease is at risk, even while this process lives.
    """
    output = SessionOutput(claude_code=claude_code, listener=on_signal)
    started = clock()
    from torchsm.agent.orphans import die_with_parent

    if session_files is not None:
        argv = kept(argv, session_files, env, cwd, timeout_s=timeout_s, grace_s=grace_s,
                    orphaned_for_s=orphaned_for_s, beat=beat)
    proc = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True,
                            preexec_fn=die_with_parent(),
                            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    stderr_tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    if on_start is not None:
        on_start(proc.pid)  # the group's leader: what a later supervisor looks for

    def handle_stdout(text: str) -> None:
        output.feed_block(text)
        if on_text is not None:
            on_text(text)
        if on_line is not None:
            for line in text.splitlines(keepends=True):
                on_line(line)

    def handle_stderr(text: str) -> None:
        stderr_tail.extend(line.rstrip()[:2000] for line in text.splitlines()[-TAIL_LINES:])
        if on_error_text is not None:
            on_error_text(text)

    readers = [_pump_blocks(proc.stdout, handle_stdout), _pump_blocks(proc.stderr, handle_stderr)]
    if stdin_text is not None:
        _write_stdin(proc, stdin_text)
    deadline = time.monotonic() + timeout_s
    timed_out = stopped = False
    while proc.poll() is None:
        out_of_time = time.monotonic() >= deadline
        if out_of_time or should_stop():
            # Only a child still running when we signal it is ended by us. One that has
            # exited on its own meanwhile (the stop came as it finished) ended normally,
            # whatever should_stop says: recorded `stopped`, its finished work would run
            # again (issue 14, crash finding 4).
            if proc.poll() is None:
                timed_out, stopped = out_of_time, not out_of_time
                terminate_group(proc, grace_s)
            break
        _wait_a_little(proc, readers[0])
    for reader in readers:
        reader.join(timeout=5)
    return SessionRun(argv, started, clock(), proc.returncode, timed_out, stopped, output,
                      "\n".join(stderr_tail))


def kept(argv: list[str], session_files: str, env: dict[str, str], cwd: str | None, *,
         timeout_s: float = 3600, grace_s: float = 10,
         orphaned_for_s: float | None = None,
         beat: tuple[str, float] | None = None) -> list[str]:
    """`argv` run by its keeper. A program that cannot be found fails here, as it would
    without the keeper (FileNotFoundError), not later as the keeper's exit status."""
    import shutil
    import sys

    program = argv[0]
    if "/" in program:
        found = os.access(os.path.join(cwd or ".", program), os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath)) is not None
    if not found:
        raise FileNotFoundError(2, "No such file or directory", program)
    limit = [] if orphaned_for_s is None else ["--orphaned-for", repr(float(orphaned_for_s))]
    if beat is not None:
        limit += ["--beat", beat[0], "--beat-within", repr(float(beat[1]))]
    return [sys.executable, "-m", "torchsm.agent.keeper", session_files,
            "--timeout", repr(float(timeout_s)), "--grace", repr(float(grace_s)), *limit,
            "--", *argv]


def _wait_a_little(proc: subprocess.Popen, stdout_reader: threading.Thread) -> None:
    """Up to 0.1 s for the child to end. While its stdout is open, wait on the reader:
    it returns the moment the child closes it, where Popen.wait's polling sleeps up to
    50 ms more (a visible cost for a short session)."""
    if stdout_reader.is_alive():
        stdout_reader.join(timeout=0.1)
        if stdout_reader.is_alive():
            return
    try:
        proc.wait(timeout=0.1)
    except subprocess.TimeoutExpired:
        pass


def _pump_blocks(stream, handle: Callable[[str], None]) -> threading.Thread:
    """Read the pipe in large chunks and hand on complete lines: per-line reads in Python
    cost more than a chatty child's own output (BENCHMARKS-usage.md)."""
    def pump():
        fd, pending = stream.fileno(), b""
        while chunk := os.read(fd, READ_CHUNK):
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut:
                # a newline byte never occurs inside a UTF-8 sequence: decoding up to one
                # never splits a character
                handle(pending[:cut].decode("utf-8", errors="replace"))
                pending = pending[cut:]
        if pending:
            handle(pending.decode("utf-8", errors="replace") + "\n")
        stream.close()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _write_stdin(proc: subprocess.Popen, text: str) -> None:
    def write():
        try:
            proc.stdin.write(text.encode("utf-8"))
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
