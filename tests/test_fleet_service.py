"""Issue 22 point 2, the fleet under systemd: `torchsm service install|status|uninstall
--fleet` writes one unit, torchsm.service, running `torchsm up --foreground`, through the
real CLI; and that unit's ExecStart line, run by hand, brings the supervisors up and takes
them away on SIGTERM, as `systemctl stop` would."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import Cli, torchsm_executable, wait_for, write_config
from test_fleet import assert_sigterm_stops_the_fleet, ps
from test_service import fake_systemctl, service, systemd_argv, unit_settings
from torchsm.config import Home

AGENT = ("sleep", "1000")  # never started: no work is queued, the supervisors idle


@pytest.fixture
def units(tmp_path: Path) -> Path:
    return tmp_path / "units"


def install_fleet(cli: Cli, units: Path, *args: str, command=AGENT, **env):
    return service(cli, "install", "--fleet", "--unit-dir", str(units), *args,
                   *(["--", *command] if command else []), **env)


def test_install_fleet_writes_one_unit_that_runs_up_in_the_foreground(crew: Cli, units,
                                                                       tmp_path):
    write_config(Home(crew.home), "[supervisor]\nstop_grace_s = 5\n")
    done = install_fleet(crew, units, "--cwd", str(tmp_path), "--env", "SECRET_TOKEN",
                         "--json", SECRET_TOKEN="sk-very-secret").json()
    path, env_file = units / "torchsm.service", crew.home / "service" / "_fleet.env"
    assert (done["unit"], done["path"], done["env_file"]) == \
        ("torchsm.service", str(path), str(env_file))
    assert done["next"] == ["systemctl daemon-reload", "systemctl enable --now torchsm",
                            "journalctl -u torchsm -f"]
    assert systemd_argv(done["exec_start"]) == [
        *torchsm_executable(), "--home", str(crew.home), "up", "--foreground", "--", *AGENT]
    settings = unit_settings(path)
    assert settings["ExecStart"] == [done["exec_start"]]
    assert settings["Description"] == ["torchsm fleet keeper (torchsm up --foreground)"]
    assert settings["WorkingDirectory"] == [str(tmp_path)]
    assert settings["EnvironmentFile"] == [str(env_file)]
    assert (settings["KillMode"], settings["Restart"]) == (["mixed"], ["on-failure"])
    # the keeper gives each supervisor stop_grace_s + 30 s, then SIGKILLs it: systemd
    # waits longer than that before it kills the keeper
    assert settings["TimeoutStopSec"] == ["50"]
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert 'SECRET_TOKEN="sk-very-secret"' in env_file.read_text().splitlines()
    assert "sk-very-secret" not in path.read_text()


def test_the_fleet_unit_never_clashes_with_a_nova_called_fleet(cli: Cli, units, tmp_path):
    from helpers import add_novas

    add_novas(Home(cli.home), "fleet", "torchsm")
    for nova in ("fleet", "torchsm"):
        service(cli, "install", nova, "--unit-dir", str(units), "--cwd", str(tmp_path),
                "--", *AGENT)
    install_fleet(cli, units, "--cwd", str(tmp_path))
    assert sorted(p.name for p in units.iterdir()) == [
        "torchsm-fleet.service", "torchsm-torchsm.service", "torchsm.service"]
    assert sorted(p.name for p in (cli.home / "service").iterdir()) == [
        "_fleet.env", "fleet.env", "torchsm.env"]
    assert systemd_argv(unit_settings(units / "torchsm-fleet.service")["ExecStart"][0])[
        len(torchsm_executable()) + 2:][:2] == ["run", "fleet"]


def test_the_command_is_optional_when_every_nova_keeps_its_own(crew: Cli, units, tmp_path):
    result = install_fleet(crew, units, "--cwd", str(tmp_path), command=None, code=1)
    assert result.err == ("torchsm: error: no agent command for echo, helix, torch: keep one "
                          "(`torchsm nova set NAME --command '...'`) or give one "
                          "(`torchsm up -- COMMAND`)\n")
    assert not units.exists() and not (crew.home / "service").exists()
    for name in ("echo", "helix"):
        crew("nova", "set", name, "--command", "sleep 1000")
    assert "no agent command for torch:" in install_fleet(
        crew, units, "--cwd", str(tmp_path), command=None, code=1).err
    crew("nova", "set", "torch", "--command", "sleep 1000")
    done = install_fleet(crew, units, "--cwd", str(tmp_path), "--json", command=None).json()
    assert systemd_argv(done["exec_start"])[-2:] == ["up", "--foreground"]


def test_status_and_uninstall_of_the_fleet_unit(crew: Cli, units, tmp_path):
    systemctl, log = fake_systemctl(tmp_path)
    args = ("--fleet", "--user", "--unit-dir", str(units))
    found = service(crew, "status", *args, "--json").json()
    assert (found["unit"], found["installed"]) == ("torchsm.service", False)
    done = install_fleet(crew, units, "--user", "--cwd", str(tmp_path), "--json",
                         TORCHSM_SYSTEMCTL=str(systemctl)).json()
    assert done["next"][0] == "systemctl --user enable --now torchsm"
    out = service(crew, "status", *args, TORCHSM_SYSTEMCTL=str(systemctl)).out
    assert out.startswith(f"torchsm.service: installed at {units / 'torchsm.service'}\n")
    assert out.endswith("active: active, enabled: enabled\n")
    removed = service(crew, "uninstall", *args, "--json",
                      TORCHSM_SYSTEMCTL=str(systemctl)).json()["removed"]
    assert removed == [str(units / "torchsm.service"),
                       str(crew.home / "service" / "_fleet.env")]
    assert log.read_text().splitlines() == [
        "--user --no-ask-password daemon-reload",
        "--user --no-ask-password is-active torchsm.service",
        "--user --no-ask-password is-enabled torchsm.service",
        "--user --no-ask-password disable --now torchsm.service",
        "--user --no-ask-password daemon-reload"]


@pytest.mark.parametrize("args", [("install", "torch", "--fleet", "--", "sleep", "1"),
                                  ("status", "torch", "--fleet"), ("uninstall",)])
def test_a_nova_or_the_fleet_not_both(crew: Cli, units, args):
    result = service(crew, *args, "--unit-dir", str(units), code=2)
    assert result.err.endswith("Error: give either a Nova's NAME or --fleet\n")


def test_the_units_exec_start_run_by_hand_brings_the_fleet_up_and_sigterm_stops_it(
        crew: Cli, units, tmp_path):
    done = install_fleet(crew, units, "--cwd", str(tmp_path), "--json").json()
    env_file = Path(done["env_file"])
    environment = dict(line.split("=", 1) for line in env_file.read_text().splitlines()[1:])
    environment = {name: value[1:-1] for name, value in environment.items()}  # "quoted"
    keeper = subprocess.Popen(systemd_argv(done["exec_start"]), cwd=tmp_path,
                              env={**environment, "PYTHONUNBUFFERED": "1"},
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: all(row["by"] == "fleet" for row in ps(crew).values()), timeout=30)
        supervisors = {row["nova"]: row["pid"] for row in ps(crew).values()}
        assert sorted(supervisors) == ["echo", "helix", "torch"]
        for pid in supervisors.values():
            assert os.readlink(f"/proc/{pid}/cwd") == str(tmp_path)
    except BaseException:
        keeper.kill()
        raise
    assert_sigterm_stops_the_fleet(keeper, crew)  # `systemctl stop`, KillMode=mixed


def test_help_mentions_the_fleet(bare_cli: Cli):
    for command in ("install", "uninstall", "status"):
        assert "--fleet" in bare_cli("service", command, "--help").out


def test_the_fleet_unit_passes_systemd_analyze_verify(crew: Cli, units, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    install_fleet(crew, units, "--cwd", str(tmp_path))
    proc = subprocess.run([analyze, "verify", str(units / "torchsm.service")],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")
