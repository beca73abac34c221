"""`torchsm service install|uninstall|status`: the systemd unit for `torchsm run NAME`,
through the real CLI. systemctl is never the machine's own: TORCHSM_SYSTEMCTL is `off`
or a stand-in script that logs its arguments."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import Cli, torchsm_executable, write_config
from torchsm.config import Home

# an argument that needs every kind of care: spaces, specifiers, variables, quotes,
# backslashes, control characters, a lone-semicolon look-alike and non-ASCII
TRICKY = "it's 100% \"$HOME\" ${X} \\n \\\\ back\\slash\tand\nnewline ; ünï"


@pytest.fixture
def units(tmp_path: Path) -> Path:
    return tmp_path / "units"


def service(cli: Cli, *args: str, check: bool = True, code: int | None = None, **env):
    env.setdefault("TORCHSM_SYSTEMCTL", "off")
    if code is not None:
        return cli.fails("service", *args, code=code, **env)
    return cli("service", *args, check=check, **env)


def install(cli: Cli, units: Path, *args: str, command=("sh", "-c", "true"), **env):
    return service(cli, "install", "torch", "--unit-dir", str(units), *args, "--",
                   *command, **env)


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def systemd_argv(exec_start: str) -> list[str]:
    """An ExecStart= value read back as systemd reads it (for the forms torchsm writes):
    specifiers (`%%`), then words (double quotes with C escapes), then variables (`$$`)."""
    def specifier(match: re.Match) -> str:
        assert match.group(1) == "%", f"a specifier would be expanded: {match.group()}"
        return "%"

    line = re.sub(r"%(.)", specifier, exec_start)
    words, word, quoted, i = [], None, False, 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}
    while i < len(line):
        char = line[i]
        if quoted and char == "\\":
            if line[i + 1] == "x":
                word += chr(int(line[i + 2:i + 4], 16))
                i += 4
                continue
            word += escapes[line[i + 1]]
            i += 2
            continue
        if char == '"':
            quoted, word = not quoted, word or ""
        elif char == " " and not quoted:
            if word is not None:
                words.append(word)
            word = None
        else:
            assert quoted or char not in "\\'", f"unquoted {char!r} in {exec_start!r}"
            word = (word or "") + char
        i += 1
    words.append(word)

    def variable(match: re.Match) -> str:
        assert match.group(1) == "$", f"a variable would be expanded: {match.group()}"
        return "$"

    return [re.sub(r"\$(\$|\{|[A-Za-z_])", variable, w) for w in words]


def fake_systemctl(tmp_path: Path, status: int = 0) -> tuple[Path, Path]:
    """A systemctl stand-in: logs its arguments, answers is-active/is-enabled."""
    log, script = tmp_path / "systemctl.log", tmp_path / "systemctl"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {log}
case "$*" in
  *is-active*) echo active ;;
  *is-enabled*) echo enabled ;;
esac
[ {status} = 0 ] || echo "Failed to connect to bus: No medium found" >&2
exit {status}
""")
    script.chmod(0o755)
    return script, log


def test_install_writes_the_unit_and_a_private_env_file(cli: Cli, torch, units, tmp_path):
    write_config(Home(cli.home), "[supervisor]\nstop_grace_s = 5\n")
    done = install(cli, units, "--cwd", str(tmp_path), "--env", "SECRET_TOKEN", "--json",
                   command=("sh", "-c", 'echo "$1"', "sh", "{prompt}"),
                   SECRET_TOKEN="sk-very-secret").json()
    path, env_file = units / "torchsm-torch.service", cli.home / "service" / "torch.env"
    assert done["unit"] == "torchsm-torch.service" and done["path"] == str(path)
    assert done["env_file"] == str(env_file) and done["enabled"] is False
    assert done["next"] == ["systemctl daemon-reload", "systemctl enable --now torchsm-torch",
                            "journalctl -u torchsm-torch -f"]
    assert path.stat().st_mode & 0o777 == 0o644
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert env_file.parent.stat().st_mode & 0o777 == 0o700

    text = path.read_text()
    assert text.startswith("# written by torchsm service install\n")
    assert "sk-very-secret" not in text
    settings = unit_settings(path)
    assert settings["ExecStart"] == [done["exec_start"]]
    assert systemd_argv(done["exec_start"]) == [
        *torchsm_executable(), "--home", str(cli.home), "run", "torch", "--cwd",
        str(tmp_path), "--", "sh", "-c", 'echo "$1"', "sh", "{prompt}"]
    expected = {
        "Description": ["torchsm supervisor for Nova torch"],
        "After": ["network-online.target"], "Wants": ["network-online.target"],
        "StartLimitIntervalSec": ["600"], "StartLimitBurst": ["5"], "Type": ["simple"],
        "WorkingDirectory": [str(tmp_path)], "EnvironmentFile": [str(env_file)],
        "Environment": ["PYTHONUNBUFFERED=1"], "Restart": ["on-failure"],
        "RestartSec": ["10"], "KillMode": ["mixed"], "KillSignal": ["SIGTERM"],
        "TimeoutStopSec": ["35"], "SendSIGHUP": ["no"], "WantedBy": ["multi-user.target"],
    }
    assert {k: v for k, v in settings.items() if k != "ExecStart"} == expected

    lines = env_file.read_text().splitlines()
    assert lines[1:] == [f'TORCHSM_HOME="{cli.home}"', f'PATH="{os.environ["PATH"]}"',
                         f'HOME="{os.environ["HOME"]}"',
                         'TORCHSM_REDIS_URL="off"',  # the mirror's URL, set here by Cli
                         'SECRET_TOKEN="sk-very-secret"']


def test_the_unit_passes_systemd_analyze_verify(cli: Cli, torch, tmp_path, request):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for user in (False, True):
        units = tmp_path / ("user" if user else "system")
        install(cli, units, *(["--user"] if user else []), "--cwd", str(tmp_path),
                command=("sh", "-c", 'echo "$1"', "sh", TRICKY, "{prompt}", ";"))
        # the user manager wants a runtime directory; nothing else is read from the host.
        # A short path: socket addresses under it must fit 108 bytes, and tmp_path under
        # pytest-xdist is too long for that
        runtime = Path(tempfile.mkdtemp(prefix="torchsm-rt-"))
        request.addfinalizer(lambda path=runtime: shutil.rmtree(path, ignore_errors=True))
        proc = subprocess.run([analyze, *(["--user"] if user else []), "verify",
                               str(units / "torchsm-torch.service")],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
        assert (proc.returncode, proc.stdout + proc.stderr) == (0, ""), user

    # verify does read the file: a typo is reported (as a warning, with exit status 0,
    # which is why a clean unit must give no output at all)
    broken = tmp_path / "broken" / "torchsm-torch.service"
    broken.parent.mkdir()
    broken.write_text((tmp_path / "system" / "torchsm-torch.service").read_text()
                      .replace("KillMode=mixed", "KillMode=mixd"))
    proc = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True,
                          timeout=60)
    assert "Failed to parse kill mode specification, ignoring: mixd" in proc.stderr


def test_arguments_survive_systemd_quoting(cli: Cli, torch, units, tmp_path):
    command = ("sh", "-c", 'printf "%s" "$1"', "sh", TRICKY, "", ";", "'", "{prompt}")
    done = install(cli, units, "--cwd", str(tmp_path), "--json", command=command).json()
    assert systemd_argv(done["exec_start"]) == [
        *torchsm_executable(), "--home", str(cli.home), "run", "torch", "--cwd",
        str(tmp_path), "--", *command]
    assert done["exec_start"].endswith(
        ' -- sh -c "printf \\"%%s\\" \\"$$1\\"" sh "it\'s 100%% \\"$$HOME\\" $${X} \\\\n '
        '\\\\\\\\ back\\\\slash\\tand\\nnewline ; ünï" "" ";" "\'" "{prompt}"')


@pytest.mark.parametrize("declared", ["claude-code", "plain"])
def test_what_the_agent_prints_is_declared_in_the_unit_too(cli: Cli, torch, units, tmp_path,
                                                            declared):
    done = install(cli, units, "--cwd", str(tmp_path), "--agent-output", declared,
                   "--json").json()
    assert systemd_argv(done["exec_start"]) == [
        *torchsm_executable(), "--home", str(cli.home), "run", "torch", "--cwd",
        str(tmp_path), "--agent-output", declared, "--", "sh", "-c", "true"]


def test_env_file_values_read_back_as_written(cli: Cli, torch, units, tmp_path):
    """systemd reads a double-quoted value as a POSIX shell does (a backslash escapes
    \\ " ` $ only), so the shell is a fair judge of what the service will see."""
    value = TRICKY + " `date` $(id) 'single' \\\" end"
    install(cli, units, "--cwd", str(tmp_path), "--env", "ODD", ODD=value)
    env_file = cli.home / "service" / "torch.env"
    proc = subprocess.run(["sh", "-c", '. "$1" && printf "%s" "$ODD"', "sh", str(env_file)],
                          capture_output=True, text=True, timeout=30)
    assert proc.stdout == value


def test_installing_again_is_a_no_op_and_a_new_command_replaces_the_unit(cli: Cli, torch,
                                                                          units, tmp_path):
    first = install(cli, units, "--cwd", str(tmp_path), "--json").json()
    path = Path(first["path"])
    before = path.read_text()
    again = install(cli, units, "--cwd", str(tmp_path), "--json").json()
    assert first["changed"] is True and again["changed"] is False
    assert path.read_text() == before
    assert "already installed" in install(cli, units, "--cwd", str(tmp_path)).out
    changed = install(cli, units, "--cwd", str(tmp_path), "--json",
                      command=("sh", "-c", "exit 0")).json()
    assert changed["changed"] is True and '"exit 0"' in unit_settings(path)["ExecStart"][0]
    assert sorted(p.name for p in units.iterdir()) == ["torchsm-torch.service"]  # no temp


def test_a_unit_torchsm_did_not_write_is_left_alone(cli: Cli, torch, units, tmp_path):
    units.mkdir()
    foreign = units / "torchsm-torch.service"
    foreign.write_text("[Service]\nExecStart=/bin/true\n")
    result = install(cli, units, "--cwd", str(tmp_path), code=1)
    assert result.err == (f"torchsm: error: {foreign} exists and was not written by "
                          "torchsm: move it away first, or choose another --unit-dir\n")
    assert not (cli.home / "service" / "torch.env").exists()
    result = service(cli, "uninstall", "torch", "--unit-dir", str(units), code=1)
    assert result.err == f"torchsm: error: {foreign} was not written by torchsm: not removing it\n"
    assert foreign.read_text() == "[Service]\nExecStart=/bin/true\n"
    found = service(cli, "status", "torch", "--unit-dir", str(units), "--json").json()
    assert found["installed"] is True and found["ours"] is False


def test_uninstall_removes_the_unit_and_the_env_file(cli: Cli, torch, units, tmp_path):
    install(cli, units, "--cwd", str(tmp_path))
    path, env_file = units / "torchsm-torch.service", cli.home / "service" / "torch.env"
    done = service(cli, "uninstall", "torch", "--unit-dir", str(units), "--json").json()
    assert done["removed"] == [str(path), str(env_file)]
    assert not path.exists() and not env_file.exists()
    result = service(cli, "uninstall", "torch", "--unit-dir", str(units), code=1)
    assert result.err == (f"torchsm: error: torchsm-torch.service is not installed "
                          f"(no {path})\n")


def test_status_text_and_json(cli: Cli, torch, units, tmp_path):
    path = units / "torchsm-torch.service"
    args = ("status", "torch", "--unit-dir", str(units))
    assert service(cli, *args).out == f"torchsm-torch.service: not installed ({path})\n"
    assert service(cli, *args, "--json").json() == {
        "unit": "torchsm-torch.service", "installed": False, "path": str(path),
        "ours": False, "exec_start": None, "env_file": None, "active": None,
        "enabled": None}
    done = install(cli, units, "--cwd", str(tmp_path), "--json").json()
    env_file = cli.home / "service" / "torch.env"
    assert service(cli, *args).out == (f"torchsm-torch.service: installed at {path}\n"
                                       f"ExecStart={done['exec_start']}\n"
                                       f"environment: {env_file}\n")
    found = service(cli, *args, "--json").json()
    assert (found["installed"], found["ours"], found["exec_start"], found["env_file"]) == \
        (True, True, done["exec_start"], str(env_file))


def test_systemctl_is_called_where_systemd_runs(cli: Cli, torch, units, tmp_path):
    systemctl, log = fake_systemctl(tmp_path)
    done = install(cli, units, "--user", "--cwd", str(tmp_path), "--json",
                   TORCHSM_SYSTEMCTL=str(systemctl)).json()
    assert done["next"][0] == "systemctl --user enable --now torchsm-torch"  # reloaded
    install(cli, units, "--user", "--cwd", str(tmp_path), TORCHSM_SYSTEMCTL=str(systemctl))
    args = ("torch", "--user", "--unit-dir", str(units))
    out = service(cli, "status", *args, TORCHSM_SYSTEMCTL=str(systemctl)).out
    assert out.endswith("active: active, enabled: enabled\n")
    service(cli, "uninstall", *args, TORCHSM_SYSTEMCTL=str(systemctl))
    assert log.read_text().splitlines() == [
        "--user --no-ask-password daemon-reload",  # once: the second install changed nothing
        "--user --no-ask-password is-active torchsm-torch.service",
        "--user --no-ask-password is-enabled torchsm-torch.service",
        "--user --no-ask-password disable --now torchsm-torch.service",
        "--user --no-ask-password daemon-reload"]


def test_a_failing_systemctl_is_a_warning(cli: Cli, torch, units, tmp_path):
    systemctl, _log = fake_systemctl(tmp_path, status=1)
    result = install(cli, units, "--cwd", str(tmp_path), TORCHSM_SYSTEMCTL=str(systemctl))
    assert result.err == ("torchsm: warning: `systemctl daemon-reload` failed (status 1): "
                          "Failed to connect to bus: No medium found\n")
    assert (units / "torchsm-torch.service").exists()
    result = service(cli, "uninstall", "torch", "--unit-dir", str(units),
                     TORCHSM_SYSTEMCTL=str(systemctl))
    assert result.err.startswith("torchsm: warning: `systemctl disable --now "
                                 "torchsm-torch.service` failed (status 1)")
    assert not (units / "torchsm-torch.service").exists()


def test_a_user_unit(cli: Cli, torch, tmp_path):
    config_home = tmp_path / "xdg"
    done = service(cli, "install", "torch", "--user", "--cwd", str(tmp_path), "--json",
                   "--", "sh", "-c", "true", XDG_CONFIG_HOME=str(config_home)).json()
    path = config_home / "systemd" / "user" / "torchsm-torch.service"
    assert done["path"] == str(path) and done["user_unit"] is True
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert done["next"] == ["systemctl --user daemon-reload",
                            "systemctl --user enable --now torchsm-torch",
                            f"loginctl enable-linger {me}",
                            "journalctl --user -u torchsm-torch -f"]
    settings = unit_settings(path)
    assert settings["WantedBy"] == ["default.target"] and "User" not in settings
    assert "After" not in settings  # the user manager has no network-online.target


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a home to another user needs root")
def test_a_system_unit_runs_as_the_homes_owner(cli: Cli, torch, units, tmp_path):
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    for path in [cli.home, *cli.home.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    install(cli, units, "--cwd", str(tmp_path))
    assert unit_settings(units / "torchsm-torch.service")["User"] == ["nobody"]
    env_file = cli.home / "service" / "torch.env"
    assert f'HOME="{nobody.pw_dir}"' in env_file.read_text().splitlines()
    for path in (env_file, env_file.parent):
        assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)


def test_refusals(cli: Cli, torch, units, tmp_path):
    args = ("install", "torch", "--unit-dir", str(units), "--cwd", str(tmp_path))
    assert service(cli, "install", "nope", "--unit-dir", str(units), "--", "sh",
                   code=1).err == "torchsm: error: no Nova named 'nope'\n"
    assert service(cli, *args, "--env", "TORCHSM_TEST_UNSET", "--", "sh",
                   code=1).err == ("torchsm: error: --env TORCHSM_TEST_UNSET: "
                                   "TORCHSM_TEST_UNSET is not set in this environment\n")
    assert service(cli, *args, "--env", "TOKEN=abc", "--", "sh", code=1).err.startswith(
        "torchsm: error: --env takes a variable's name")
    assert service(cli, *args, "--", "no-such-agent-xyz", code=1).err == \
        "torchsm: error: command not found: no-such-agent-xyz\n"
    assert service(cli, *args, "--", "sh", "-c", "echo {prompt}", code=1).err.startswith(
        "torchsm: error: {prompt} must be a whole argument")
    result = service(cli, *args, code=2)
    assert result.err.endswith("Error: no agent command given: torchsm service install "
                               "NAME [--user] -- COMMAND [ARG...]\n")
    assert service(cli, "status", "../x", code=1).err.startswith(
        "torchsm: error: invalid Nova name '../x'")
    assert not units.exists() and not (cli.home / "service").exists()


def test_help_says_how_to_keep_it_running(bare_cli: Cli):
    for args in (["service"], ["service", "install"]):
        out = bare_cli(*args, "--help").out
        assert "--user" in out and "enable-linger" in out, args
    for command in ("install", "uninstall", "status"):
        out = bare_cli("service", command, "--help").out
        assert out.startswith(f"Usage: torchsm service {command}")
        assert all(option in out for option in ("--home", "--json", "--user", "--unit-dir"))


def test_a_user_unit_folder_is_made_0755_whatever_the_umask(cli: Cli, torch, tmp_path):
    config_home = tmp_path / "xdg"
    old = os.umask(0)
    try:
        service(cli, "install", "torch", "--user", "--cwd", str(tmp_path), "--", "sh", "-c",
                "true", XDG_CONFIG_HOME=str(config_home))
    finally:
        os.umask(old)
    for folder in (config_home, config_home / "systemd", config_home / "systemd" / "user"):
        assert oct(folder.stat().st_mode & 0o777) == oct(0o755), folder
    unit = config_home / "systemd" / "user" / "torchsm-torch.service"
    assert unit.stat().st_mode & 0o777 == 0o644
