"""`torchsm doctor`: is this installation fit to run Novas, and what to do where not.

Each check is a small function returning a `Check`: its name, whether it passed, what it
found, and what to do about a problem. `run_checks` runs them all; one that cannot even
look (an unreadable home, a broken config) fails with what it hit, it never raises.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

from torchsm import user_files
from torchsm.config import Config, Home, load_config
from torchsm.errors import TorchsmError, UserFileError

# The oldest Claude Code doctor accepts: the line the end-to-end tests pin
# (tests/e2e/CLAUDE_CODE_VERSION, 2.1.332 when written; the pin is not in the package).
# Older versions are untested: the hooks torchsm installs (StopFailure among them) and the
# stream-json usage signals it reads may be missing.
MIN_CLAUDE_VERSION = (2, 1, 0)
CLAUDE_VERSION_TIMEOUT_S = 15
VERSION_OUTPUT_BYTES = 64 * 1024  # what doctor reads of `claude --version` at most
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class Check(NamedTuple):
    name: str
    ok: bool
    detail: str
    fix: str | None = None  # what to do about it (None when ok)

    def as_json(self) -> dict[str, Any]:
        return self._asdict()


def run_checks(home: Home, project: Path, claude: str | None = None,
               now: float | None = None, home_reason: str | None = None) -> list[Check]:
    """Every check, in the order a person fixes things: the home first (and why it is
    that folder: `home_reason`, as torchsm.config.home_choice gives it)."""
    now = time.time() if now is None else now
    checks = [check_home(home, home_reason)]
    if not checks[0].ok and not home.is_initialised():
        return checks  # nothing else can be looked at
    config, problem = _config(home)
    checks.append(problem or Check("config", True, _config_detail(home)))
    if config is None:
        return checks
    schema = _guarded(lambda: check_schema(home))
    at_head = all(c.ok for c in schema)  # the hooks and supervisor checks read the db
    for check in (lambda: schema,
                  lambda: check_mirror(home, config, now),
                  lambda: check_hooks(home, config, project) if at_head else [],
                  lambda: check_hook_scan(project),
                  lambda: check_supervisors(home, config, now) if at_head else [],
                  lambda: check_claude(claude)):
        checks.extend(_guarded(check))
    return checks


def _guarded(check: Callable[[], Check | list[Check]]) -> list[Check]:
    try:
        result = check()
    except TorchsmError as exc:
        return [Check("error", False, exc.message, "fix the error above and run doctor again")]
    return result if isinstance(result, list) else [result]


def _config(home: Home) -> tuple[Config | None, Check | None]:
    try:
        return load_config(home), None
    except TorchsmError as exc:
        return None, Check("config", False, exc.message, f"fix {home.config_path}")


def _config_detail(home: Home) -> str:
    return str(home.config_path) if home.config_path.is_file() else "defaults (no torchsm.toml)"


def check_home(home: Home, reason: str | None = None) -> Check:
    """The home exists, is 0700 (no access for others) and its database 0600."""
    why = f"; {reason}" if reason else ""
    if not home.is_initialised():
        return Check("home", False, f"no torchsm home at {home.path}{why and f' ({reason})'}",
                     f"run `torchsm --home {shlex.quote(str(home.path))} init`")
    loose = [f"{path} is {stat.S_IMODE(path.stat().st_mode):04o} (want {want:04o})"
             for path, want in ((home.path, 0o700), (home.db_path, 0o600))
             if stat.S_IMODE(path.stat().st_mode) & 0o077]
    if loose:
        return Check("home", False, "; ".join(loose),
                     f"chmod 700 {shlex.quote(str(home.path))}; "
                     f"chmod 600 {shlex.quote(str(home.db_path))}")
    return Check("home", True, f"{home.path} (0700, database 0600{why})")


def check_schema(home: Home) -> Check:
    """The database's schema is at the head of this torchsm's migrations."""
    from torchsm.storage import database

    from torchsm.storage.store import is_known_revision

    current, head = database.check_database(home), database.head_revision()
    if current != head:
        fix = ("run `torchsm db upgrade` (with the supervisors stopped)"
               if is_known_revision(current) else "upgrade torchsm: a newer one wrote this database")
        return Check("schema", False, f"at {current or 'nothing'}, this torchsm needs {head}", fix)
    return Check("schema", True, f"at head ({head})")


def check_mirror(home: Home, config: Config, now: float) -> Check:
    """The mirror answers (or is off), and nothing waits in its file queues."""
    from torchsm.mirror import streams

    status = streams.mirror_status(home, config, now)
    if not status["enabled"]:
        return Check("mirror", True, 'off (redis_url = "off")')
    if not status["reachable"]:
        return Check("mirror", False, f"{status['url']} does not answer: {status['error']}",
                     "start the Redis/Dragonfly server, or set redis_url = \"off\" in "
                     "torchsm.toml; entries wait in HOME/queue meanwhile")
    queued = sum(status["queued"].values())
    if queued:
        return Check("mirror", False, f"{status['url']} answers, {queued} entries queued",
                     "run `torchsm mirror flush`")
    return Check("mirror", True, f"{status['url']} answers ({status['latency_ms']:.2f} ms)")


def _nova_names(home: Home, config: Config) -> list[str]:
    from torchsm.storage import store

    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(lambda conn: [n.name for n in store.load_novas(conn)])


def check_hooks(home: Home, config: Config, project: Path) -> list[Check]:
    """Every Nova of the home has torchsm's hooks for every event in the settings Claude
    Code reads for PROJECT: its .claude/settings.local.json and settings.json, and the
    user's (doctor cannot know which project drives which Nova: it reports the Novas the
    project has hooks for, and a project with none)."""
    from torchsm.hooks import installer

    paths = [installer.settings_path(scope, project) for scope in installer.SCOPES]
    installed: dict[str, set[str]] = {}
    for settings_path in paths:
        settings = _settings_at(settings_path)
        if isinstance(settings, Check):
            return [settings]
        for command in _hook_commands(settings):
            owned = installer.owned_by_torchsm(command, home.path)
            if owned and f"--home {shlex.quote(str(home.path))} " in command:
                installed.setdefault(owned[1], set()).add(owned[0])
    install = (f"run `torchsm hooks install --nova NAME --project "
               f"{shlex.quote(str(project))}`")
    if not installed:
        where = ", ".join(str(p) for p in paths[:-1]) + f" or {paths[-1]}"
        return [Check("hooks", False, f"no torchsm hooks for this home in {where}", install)]
    wanted = set(installer.EVENTS.values())
    names = set(_nova_names(home, config))
    return [_hooks_of(nova, events, wanted, names, project) for nova, events in
            sorted(installed.items())]


def _settings_at(path: Path) -> Any:
    """The settings in `path` ({} when there are none), or the failed Check that says why
    they cannot be read."""
    try:
        return json.loads(user_files.read(path))
    except FileNotFoundError:
        return {}
    except UserFileError as exc:
        return Check("hooks", False, exc.message,
                     "make it a regular file (JSON), then `torchsm hooks install`")
    except (ValueError, RecursionError) as exc:
        return Check("hooks", False, f"{path}: cannot read: {exc}",
                     "fix the file (it must be JSON), then `torchsm hooks install`")


def _hooks_of(nova: str, events: set[str], wanted: set[str], names: set[str],
              project: Path) -> Check:
    name = f"hooks {nova}"
    install = (f"run `torchsm hooks install --nova {nova} --project "
               f"{shlex.quote(str(project))}`")
    if nova not in names:
        return Check(name, False, f"hooks for {nova}, which is not a Nova of this home",
                     f"`torchsm nova add {nova}`, or remove its hooks from the settings")
    missing = sorted(wanted - events)
    if missing:
        return Check(name, False, f"missing hooks: {', '.join(missing)}", install)
    return Check(name, True, f"all {len(wanted)} hook events installed")


def _hook_commands(settings: Any) -> list[str]:
    hooks = settings.get("hooks") if isinstance(settings, dict) else None
    if not isinstance(hooks, dict):
        return []
    return [h.get("command") for groups in hooks.values() if isinstance(groups, list)
            for group in groups if isinstance(group, dict)
            for h in (group.get("hooks") or []) if isinstance(h, dict)
            and isinstance(h.get("command"), str)]


def check_hook_scan(project: Path) -> Check:
    """`torchsm hooks scan PROJECT/.claude` finds nothing dangerous."""
    from torchsm.hooks import scanner

    folder = project / ".claude"
    if not folder.exists():
        return Check("hooks scan", True, f"nothing to scan ({folder} does not exist)")
    report = scanner.scan([folder])
    if report.findings:
        first = report.findings[0]
        return Check("hooks scan", False,
                     f"{len(report.findings)} dangerous pattern(s), first: {first.file}:"
                     f"{first.line}: {first.rule}",
                     f"{first.fix} (all of them: `torchsm hooks scan {shlex.quote(str(folder))}`)")
    if report.unscanned:
        return Check("hooks scan", False, f"{len(report.unscanned)} file(s) could not be read",
                     f"see `torchsm hooks scan {shlex.quote(str(folder))}`")
    return Check("hooks scan", True, f"no dangerous patterns in {folder}")


def check_supervisors(home: Home, config: Config, now: float) -> list[Check]:
    """A live supervisor (`torchsm run`) for every Nova, touching its plan."""
    from torchsm.alerts import conditions
    from torchsm.storage import run_files

    names = _nova_names(home, config)
    if not names:
        return [Check("supervisors", True, "no Novas yet")]
    out = []
    for name in names:
        plan = run_files.read_plan(home, name)
        if plan is None:
            out.append(Check(f"supervisor {name}", False, "no supervisor runs",
                             f"start one: `torchsm run {name} -- COMMAND` (or `torchsm "
                             "service install`)"))
            continue
        silence = conditions.supervisor_silence(home, config, name, now)
        out.append(Check(f"supervisor {name}", silence is None,
                         silence or f"pid {plan.get('pid')}: {plan.get('why')}",
                         None if silence is None else
                         f"stop pid {plan.get('pid')} and start `torchsm run {name}` again"))
    return out


def check_claude(claude: str | None, timeout_s: float = CLAUDE_VERSION_TIMEOUT_S) -> Check:
    """The Claude Code binary is there and at least MIN_CLAUDE_VERSION."""
    path = claude or shutil.which("claude")
    minimum = ".".join(map(str, MIN_CLAUDE_VERSION))
    install = (f"install Claude Code {minimum} or later (`npm install -g "
               "@anthropic-ai/claude-code`), or give its path with --claude PATH")
    if path is None or not os.access(path, os.X_OK) or os.path.isdir(path):
        return Check("claude", False, f"{path or 'claude'}: not found or not executable",
                     install)
    try:
        answer = ask_version(path, timeout_s)
    except OSError as exc:
        return Check("claude", False, f"{path} --version failed: {exc}", install)
    if answer.problem is not None:
        return Check("claude", False, f"{path} --version {answer.problem}", install)
    found = _VERSION.search(answer.output.decode("utf-8", errors="replace"))
    if answer.status != 0 or found is None:
        return Check("claude", False, f"{path} --version said nothing usable "
                                      f"(exit {answer.status})", install)
    version = tuple(int(part) for part in found.groups())
    if version < MIN_CLAUDE_VERSION:
        return Check("claude", False, f"{path}: version {found.group()} is older than "
                                      f"{minimum}", install)
    return Check("claude", True, f"{path}: version {found.group()}")


class Answer(NamedTuple):
    """What a binary said to `--version`."""

    status: int | None  # its exit status; None: it did not exit in time
    output: bytes  # its stdout, at most VERSION_OUTPUT_BYTES
    problem: str | None  # why the answer cannot be used, or None


def ask_version(path: str, timeout_s: float) -> Answer:
    """Run `path --version` in a process group of its own, read at most
    VERSION_OUTPUT_BYTES of what it prints for at most `timeout_s`, then kill the whole
    group: a binary that hangs, talks without end or leaves children behind costs doctor
    `timeout_s` and a little memory, and nothing it started outlives doctor."""
    proc = subprocess.Popen([path, "--version"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        output, ended = _read_bounded(proc.stdout.fileno(), deadline, VERSION_OUTPUT_BYTES + 1)
        status = _exit_status(proc, deadline) if ended else None
    finally:
        _kill_group(proc)
    if len(output) > VERSION_OUTPUT_BYTES:
        return Answer(status, output, f"printed more than {VERSION_OUTPUT_BYTES // 1024} KiB")
    if status is None:
        return Answer(status, output, f"did not answer within {timeout_s:g} s")
    return Answer(status, output, None)


def _read_bounded(fd: int, deadline: float, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes from `fd` until its end or `deadline`; True when it ended."""
    chunks, size = [], 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while size < limit:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return b"".join(chunks), False
            chunk = os.read(fd, limit - size)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks), False


def _exit_status(proc: subprocess.Popen, deadline: float) -> int | None:
    try:
        return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    proc.wait()
    proc.stdout.close()
