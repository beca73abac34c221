"""`torchsm run NAME` as a systemd service: render the unit, install, uninstall, status.

A unit `torchsm-NAME.service` runs the same supervisor a person would start by hand, with
the home and environment baked in: systemd restarts it when it fails (a crash, kill -9,
an OOM kill) and gives up after a burst of failures; a clean stop (`systemctl stop`, a
signal torchsm handles) ends it for good. Secrets (CLAUDE_CODE_OAUTH_TOKEN,
ANTHROPIC_API_KEY, a Redis password) go to `HOME/service/NAME.env` (0600), never into the
unit, which anyone may read.

The fleet (`torchsm up`) has one unit of its own, `torchsm.service`, running the keeper
(`torchsm up --foreground`), which restarts a supervisor that dies alone, with backoff;
systemd restarts the keeper. Its name cannot be a Nova's (`torchsm-NAME.service`, NAME
never empty), nor can its env file's (`HOME/service/_fleet.env`: a Nova's name never
begins with `_`), so a Nova called `fleet` keeps a unit of its own beside it.

systemctl is called only where systemd runs (/run/systemd/system exists), and its
failures are warnings: the files are what install and uninstall promise. The variable
TORCHSM_SYSTEMCTL names another systemctl to call (a wrapper, or the tests' stand-in);
`off` never calls one.
"""

from __future__ import annotations

import math
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path
from typing import Mapping, NamedTuple

from torchsm import user_files
from torchsm.config import Config, Home
from torchsm.errors import TorchsmError
from torchsm.names import check_name

MARKER = "# written by torchsm service install"
PASSED_WHEN_SET = ("TORCHSM_REDIS_URL",)  # the mirror's URL (and password), if any
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# an ExecStart argument systemd takes as it is (no quoting, specifier or variable)
_PLAIN_ARG = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_NEEDS_ROOT = " (a system unit needs root: use sudo, or --user)"
FLEET_UNIT = "torchsm.service"
FLEET_STOP_MARGIN_S = 15  # the keeper's own wait after it SIGKILLed a late supervisor
_EXEC_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class ServiceError(TorchsmError):
    """The systemd service could not be set up."""


class UnitSpec(NamedTuple):
    """Everything a unit for one Nova (or for the fleet) says."""

    nova: str | None  # None: the fleet's unit, `torchsm up --foreground`
    home: Path
    command: tuple[str, ...]  # the agent command, as `torchsm run NAME -- COMMAND` takes it
    # (the fleet: `up -- COMMAND`'s, maybe none)
    cwd: Path
    user_unit: bool  # a unit of the user's own systemd (`--user`), else a system unit
    environment: dict[str, str]  # the env file's variables
    stop_grace_s: float
    run_as: str | None  # User= of a system unit; None: root (or the user's own manager)
    owner: tuple[int, int] | None  # (uid, gid) the env file is given to, when not ours
    executable: tuple[str, ...]  # this torchsm: its console script or `python -m torchsm`
    agent_output: str = "auto"  # `torchsm run --agent-output`


def unit_name(nova: str | None) -> str:
    """A Nova's unit, or the fleet's (nova None)."""
    return FLEET_UNIT if nova is None else f"torchsm-{check_name(nova)}.service"


def default_unit_dir(user_unit: bool, environ: Mapping[str, str] = os.environ) -> Path:
    """Where systemd looks for units: the user's `~/.config/systemd/user` (or under
    $XDG_CONFIG_HOME), else the administrator's /etc/systemd/system."""
    if not user_unit:
        return Path("/etc/systemd/system")
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def env_file_path(home: Home, nova: str | None) -> Path:
    return home.path / "service" / ("_fleet.env" if nova is None else f"{check_name(nova)}.env")


def torchsm_executable() -> tuple[str, ...]:
    """This torchsm, absolute: the console script beside the interpreter when there is
    one (not resolved: a venv's python is a link to the system's), else `python -m`."""
    python = Path(sys.executable).absolute()
    script = python.parent / "torchsm"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (str(python), "-m", "torchsm")


def prepare(home: Home, config: Config, nova: str, command: tuple[str, ...], *,
            user_unit: bool, cwd: str | None = None, pass_env: tuple[str, ...] = (),
            environ: Mapping[str, str] = os.environ, agent_output: str = "auto") -> UnitSpec:
    """The unit for Nova `nova` of `home`, checked as `torchsm run` would check it: the
    Nova exists, COMMAND can be run with the environment the service will have, and
    every variable of `pass_env` is set here (its value goes to the env file)."""
    from torchsm import novas
    from torchsm.agent import session
    from torchsm.supervisor import process

    novas.status(home, config, nova)  # the home, the schema and the Nova must be there
    session.check_template(command)
    spec = _spec(home, config, nova, command, user_unit, cwd, pass_env, environ)
    process.check_command(command, str(spec.cwd), spec.environment)
    return spec._replace(agent_output=agent_output)


def prepare_fleet(home: Home, config: Config, command: tuple[str, ...], *,
                  user_unit: bool, cwd: str | None = None, pass_env: tuple[str, ...] = (),
                  environ: Mapping[str, str] = os.environ) -> UnitSpec:
    """The fleet's unit, checked as `torchsm up` would check it: the home has Novas, and
    each has a command (its own, else COMMAND, else the one `up` remembers) that can be
    run; NoAgentCommand names those without one."""
    from torchsm.supervisor import fleet_commands

    fleet_commands.agent_commands(home, config, [], list(command) or None)
    return _spec(home, config, None, command, user_unit, cwd, pass_env, environ)


def _spec(home: Home, config: Config, nova: str | None, command: tuple[str, ...],
          user_unit: bool, cwd: str | None, pass_env: tuple[str, ...],
          environ: Mapping[str, str]) -> UnitSpec:
    workdir = Path(cwd or os.getcwd()).expanduser().absolute()
    run_as, owner = _service_user(home, user_unit)
    environment = _environment(home, environ, pass_env, run_as)
    return UnitSpec(nova, home.path, tuple(command), workdir, user_unit, environment,
                    config.supervisor.stop_grace_s, run_as, owner, torchsm_executable())


def _service_user(home: Home, user_unit: bool) -> tuple[str | None, tuple[int, int] | None]:
    """Who a system unit runs as: the home's owner. The supervisor writes the home (0700
    folders, 0600 files), so running it as root on someone's home would leave files its
    owner cannot read; a root-owned home runs as root (systemd's default)."""
    info = home.path.stat()
    if user_unit or info.st_uid == 0:
        return None, None
    try:
        name = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        raise ServiceError(f"{home.path} belongs to uid {info.st_uid}, which has no user "
                           "name for User=: use --user, or give the home to a user") from None
    owner = (info.st_uid, info.st_gid) if info.st_uid != os.geteuid() else None
    return name, owner


def _environment(home: Home, environ: Mapping[str, str], pass_env: tuple[str, ...],
                 run_as: str | None) -> dict[str, str]:
    env = {"TORCHSM_HOME": str(home.path), "PATH": environ.get("PATH") or os.defpath,
           "HOME": _home_dir(environ, run_as)}
    env.update({name: environ[name] for name in PASSED_WHEN_SET if environ.get(name)})
    for name in pass_env:
        if not _VARIABLE.fullmatch(name):
            raise ServiceError(f"--env takes a variable's name ([A-Za-z_][A-Za-z0-9_]*), "
                               f"got {name!r}: its value is read from this environment, "
                               "so no secret appears on a command line")
        if name not in environ:
            raise ServiceError(f"--env {name}: {name} is not set in this environment")
        env[name] = environ[name]
    return env


def _home_dir(environ: Mapping[str, str], run_as: str | None) -> str:
    if run_as is not None:
        return pwd.getpwnam(run_as).pw_dir  # not root's $HOME under sudo
    return environ.get("HOME") or pwd.getpwuid(os.geteuid()).pw_dir


# --- rendering ------------------------------------------------------------------------

def exec_word(arg: str) -> str:
    """One argument of ExecStart= as systemd reads it back. Specifiers and variables are
    expanded even inside quotes, so `%` is written `%%` and `$` `$$`; anything beyond
    plain characters goes in double quotes with C escapes (a lone `;` quoted is no longer
    a command separator)."""
    _check_text(arg, "an argument")
    text = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_ARG.fullmatch(arg):
        return text
    return '"' + "".join(_exec_escape(char) for char in text) + '"'


def _exec_escape(char: str) -> str:
    if char in _EXEC_ESCAPES:
        return _EXEC_ESCAPES[char]
    return f"\\x{ord(char):02x}" if char < " " or char == "\x7f" else char


def env_value(value: str) -> str:
    """A value of an EnvironmentFile=, double-quoted: systemd then keeps every character
    but takes a backslash before one of \\ " ` $ (as a POSIX shell does in double
    quotes), so those four are escaped and nothing else changes."""
    _check_text(value, "a variable's value")
    return '"' + re.sub(r'([\\"`$])', r"\\\1", value) + '"'


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ServiceError(f"{what} is not valid UTF-8, which a unit cannot hold: "
                           f"{text!r}") from None


def _unit_path_value(path: Path, what: str) -> str:
    """A path for WorkingDirectory= or EnvironmentFile=: the rest of the line is the
    path (no quoting), so it must fit on the line; `%` is a specifier there too."""
    text = str(path)
    if any(char < " " or char == "\x7f" for char in text) or text != text.strip():
        raise ServiceError(f"{what} {text!r} has control characters or surrounding "
                           "spaces, which a unit cannot hold: choose another path")
    _check_text(text, what)
    return text.replace("%", "%%")


def exec_start(spec: UnitSpec) -> str:
    """The ExecStart= value: `torchsm --home HOME run NAME --cwd DIR [--agent-output X]
    -- COMMAND...`; the fleet's: `torchsm --home HOME up --foreground [-- COMMAND...]`
    (its supervisors run in the unit's WorkingDirectory)."""
    argv = [*spec.executable, "--home", str(spec.home), *_subcommand(spec)]
    return " ".join(exec_word(arg) for arg in argv)


def _subcommand(spec: UnitSpec) -> list[str]:
    if spec.nova is None:
        return ["up", "--foreground", *(["--", *spec.command] if spec.command else [])]
    declared = [] if spec.agent_output == "auto" else ["--agent-output", spec.agent_output]
    return ["run", spec.nova, "--cwd", str(spec.cwd), *declared, "--", *spec.command]


def render_unit(spec: UnitSpec, env_file: Path) -> str:
    """The unit file's text."""
    name = unit_name(spec.nova)
    what = "`torchsm up --foreground`, the fleet's keeper," if spec.nova is None else \
        f"`torchsm run {spec.nova}`"
    # The user manager has no network-online.target (a system target): a user unit just
    # starts, and a session that finds no network fails and cools with backoff.
    network = "" if spec.user_unit else \
        "After=network-online.target\nWants=network-online.target\n"
    user = f"User={spec.run_as}\n" if spec.run_as else ""
    return f"""{MARKER}
# {name}: {what} under systemd. Install it again after changing the
# command or [supervisor] stop_grace_s; the environment (secrets included) is in the env file.
[Unit]
Description={_description(spec)}
{network}StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=simple
ExecStart={exec_start(spec)}
WorkingDirectory={_unit_path_value(spec.cwd, "the working directory")}
EnvironmentFile={_unit_path_value(env_file, "the env file")}
# the supervisor's event lines reach the journal as they happen, not a buffer later
Environment=PYTHONUNBUFFERED=1
{user}Restart=on-failure
RestartSec=10
{_kill_comment(spec)}KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={_stop_timeout(spec)}
SendSIGHUP=no

[Install]
WantedBy={"default.target" if spec.user_unit else "multi-user.target"}
"""


def _description(spec: UnitSpec) -> str:
    if spec.nova is None:
        return "torchsm fleet keeper (torchsm up --foreground)"
    return f"torchsm supervisor for Nova {spec.nova}"


def _kill_comment(spec: UnitSpec) -> str:
    if spec.nova is None:
        return """# SIGTERM goes to the keeper alone, which stops every supervisor (each stops its
# agent and records the session; SIGKILL to a supervisor's group after stop_grace_s
# + 30 s) and ends; then systemd SIGKILLs whatever is left in the unit's cgroup.
"""
    return """# SIGTERM goes to the supervisor alone, which stops the agent's process group itself
# (SIGTERM, SIGKILL after stop_grace_s) and records the session as stopped; then
# systemd SIGKILLs whatever is left in the unit's cgroup, the agent's descendants
# included, also when the supervisor itself died.
"""


def _stop_timeout(spec: UnitSpec) -> int:
    """stop_grace_s for the agent plus time for the supervisor to record the session
    (fleet.stop_timeout); the fleet's keeper waits that long for its supervisors, then
    FLEET_STOP_MARGIN_S more for one it had to kill."""
    from torchsm.supervisor.fleet import STOP_BOOKKEEPING_S

    margin = FLEET_STOP_MARGIN_S if spec.nova is None else 0
    return math.ceil(spec.stop_grace_s + STOP_BOOKKEEPING_S + margin)


def render_env_file(environment: Mapping[str, str]) -> str:
    lines = [f"{MARKER}: the service's environment (0600: it may hold secrets)"]
    lines += [f"{name}={env_value(value)}" for name, value in environment.items()]
    return "\n".join(lines) + "\n"


# --- systemctl ----------------------------------------------------------------------

class Systemctl(NamedTuple):
    """`systemctl [--user]`, where systemd runs."""

    program: str
    user_unit: bool

    def __call__(self, *args: str, timeout: float | None = 60) -> tuple[int, str]:
        """(exit status, output); status 127 and the reason when it cannot run."""
        argv = [self.program, *(["--user"] if self.user_unit else []), "--no-ask-password",
                *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 127, str(exc)
        return proc.returncode, (proc.stdout.strip() or proc.stderr.strip())


def find_systemctl(user_unit: bool, environ: Mapping[str, str] = os.environ) \
        -> Systemctl | None:
    """The systemctl to call, or None where systemd does not run (a container, a
    chroot: the files are written all the same)."""
    chosen = environ.get("TORCHSM_SYSTEMCTL")
    if chosen == "off":
        return None
    if chosen:
        return Systemctl(chosen, user_unit)
    return Systemctl("systemctl", user_unit) if Path("/run/systemd/system").is_dir() \
        else None


def _systemctl_words(user_unit: bool) -> str:
    return "systemctl --user" if user_unit else "systemctl"


# --- install, uninstall, status -------------------------------------------------------

def install(spec: UnitSpec, unit_dir: Path, systemctl: Systemctl | None) -> dict:
    """Write the env file and the unit (atomically; again is a no-op), reload systemd
    where it runs. Refuses to replace a unit file torchsm did not write."""
    name = unit_name(spec.nova)
    path = unit_dir / name
    env_file = env_file_path(Home(spec.home), spec.nova)
    text = render_unit(spec, env_file)
    old = _read_unit(path)
    if old is not None and not _is_ours(old):
        raise ServiceError(f"{path} exists and was not written by torchsm: move it away "
                           "first, or choose another --unit-dir")
    unit = user_files.destination(path)
    changed = old != text
    if changed:
        user_files.check_writable(unit)  # before the env file: no secrets for a refused unit
    env_existed = env_file.exists()
    env_changed = _write_env_file(env_file, render_env_file(spec.environment), spec.owner)
    if changed:
        try:
            _write_unit(unit, text)
        except TorchsmError:
            if not env_existed:  # no secrets left behind for a unit that is not there
                _remove(env_file)
            raise
    warnings = []
    if systemctl is not None and (changed or env_changed):
        warnings += _warn_on_failure(systemctl, "daemon-reload")
    return {"unit": name, "path": str(path), "env_file": str(env_file),
            "exec_start": exec_start(spec), "working_directory": str(spec.cwd),
            "user_unit": spec.user_unit, "run_as": spec.run_as,
            "changed": changed or env_changed, "enabled": False,
            "next": next_steps(name, spec.user_unit, reloaded=systemctl is not None),
            "warnings": warnings}


def next_steps(unit: str, user_unit: bool, *, reloaded: bool) -> list[str]:
    """What a person runs next: enable and start it, and for a user unit, keep the user's
    systemd running without a login (lingering), or it stops at the last logout."""
    systemctl, short = _systemctl_words(user_unit), unit.removesuffix(".service")
    steps = [] if reloaded else [f"{systemctl} daemon-reload"]
    steps.append(f"{systemctl} enable --now {short}")
    if user_unit:
        steps.append(f"loginctl enable-linger {pwd.getpwuid(os.geteuid()).pw_name}")
    steps.append(f"journalctl {'--user ' if user_unit else ''}-u {short} -f")
    return steps


def uninstall(home: Home, nova: str | None, unit_dir: Path, systemctl: Systemctl | None) -> dict:
    """Stop and disable the service where systemd runs, then remove the unit and the env
    file. Refuses a unit file torchsm did not write; ServiceError when nothing is there."""
    name = unit_name(nova)
    path, env_file = unit_dir / name, env_file_path(home, nova)
    old = _read_unit(path)
    if old is None and not env_file.exists():
        raise ServiceError(f"{name} is not installed (no {path})")
    if old is not None and not _is_ours(old):
        raise ServiceError(f"{path} was not written by torchsm: not removing it")
    warnings = []
    if old is not None and systemctl is not None:
        # stopping waits for the supervisor to stop its agent: no timeout of our own
        warnings += _warn_on_failure(systemctl, "disable", "--now", name, timeout=None)
    removed = [str(p) for p in (path, env_file) if _remove(p)]
    if old is not None and systemctl is not None:
        warnings += _warn_on_failure(systemctl, "daemon-reload")
    return {"unit": name, "path": str(path), "env_file": str(env_file), "removed": removed,
            "warnings": warnings}


def status(home: Home, nova: str | None, unit_dir: Path, systemctl: Systemctl | None) -> dict:
    """Whether the unit is installed, what it runs, and what systemd says of it (None
    where systemd does not run)."""
    name = unit_name(nova)
    path, env_file = unit_dir / name, env_file_path(home, nova)
    text = _read_unit(path)
    active = enabled = None
    if systemctl is not None:
        active = systemctl("is-active", name)[1] or "unknown"
        enabled = systemctl("is-enabled", name)[1] or "unknown"
    return {"unit": name, "installed": text is not None, "path": str(path),
            "ours": text is not None and _is_ours(text),
            "exec_start": _setting(text, "ExecStart") if text else None,
            "env_file": str(env_file) if env_file.exists() else None,
            "active": active, "enabled": enabled}


def _warn_on_failure(systemctl: Systemctl, *args: str, timeout: float | None = 60) \
        -> list[str]:
    code, output = systemctl(*args, timeout=timeout)
    if code == 0:
        return []
    return [f"`{_systemctl_words(systemctl.user_unit)} {' '.join(args)}` failed "
            f"(status {code}){': ' + output.splitlines()[-1] if output else ''}"]


def _setting(text: str, key: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"{key}="):
            return line[len(key) + 1:]
    return None


# --- files ----------------------------------------------------------------------------

def _read_unit(path: Path) -> str | None:
    """The file's text (None when there is none), read as a file a user named: a FIFO or
    device there is refused, never waited on or read without end."""
    try:
        return user_files.read(path).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _is_ours(text: str) -> bool:
    return MARKER in text.splitlines()


def _write_unit(unit: user_files.Destination, text: str) -> None:
    """The unit file, 0644 (systemd and `systemctl cat` read it as anyone), its folder
    made 0755 whatever the umask."""
    folder = unit.target.parent
    try:
        user_files.make_dirs(folder)
    except OSError as exc:
        raise ServiceError(f"cannot create {exc.filename or folder}: {exc.strerror}"
                           + _NEEDS_ROOT * isinstance(exc, PermissionError)) from None
    if not os.access(folder, os.W_OK):
        raise ServiceError(f"cannot write {unit.named}: permission denied" + _NEEDS_ROOT)
    user_files.replace(unit, text.encode("utf-8"), mode=0o644)


def _write_env_file(path: Path, text: str, owner: tuple[int, int] | None) -> bool:
    """Write HOME/service/NAME.env (0600, its folder 0700) unless it already says
    `text`; True when written."""
    if _read_unit(path) == text:
        return False
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path.parent, 0o700)
        if owner is not None:
            os.chown(path.parent, *owner)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror}") from None
    user_files.replace(user_files.destination(path), text.encode("utf-8"), mode=0o600,
                      owner=owner)
    return True


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ServiceError(f"cannot remove {path}: {exc.strerror}") from None
    return True

