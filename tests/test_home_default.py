"""Where the home is when none is given: `./var` of a torchsm checkout that has one, else
the per-user `$XDG_STATE_HOME/torchsm`; and the commands that say which is used."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import Cli, torchsm_executable
from torchsm.config import home_choice, resolve_home

PYPROJECT = '[project]\nname = "torchsm"\ndynamic = ["version"]\n'


@pytest.fixture
def nowhere(tmp_path, monkeypatch) -> Path:
    """An empty folder to stand in, no TORCHSM_HOME, XDG_STATE_HOME under tmp_path."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("TORCHSM_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return folder


def test_an_empty_folder_uses_the_per_user_state_home(nowhere, tmp_path):
    choice = home_choice()
    assert resolve_home().path == tmp_path / "state" / "torchsm"
    assert "per-user default" in choice.reason


def test_without_xdg_state_home_it_is_under_the_users_home(nowhere, tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert resolve_home().path == tmp_path / "user" / ".local" / "state" / "torchsm"


def test_a_relative_xdg_state_home_is_ignored(nowhere, tmp_path, monkeypatch):
    # the XDG base directory spec: a relative path in these variables is invalid
    monkeypatch.setenv("XDG_STATE_HOME", "state")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert resolve_home().path == tmp_path / "user" / ".local" / "state" / "torchsm"


def test_a_torchsm_checkout_with_var_keeps_it(nowhere):
    (nowhere / "pyproject.toml").write_text(PYPROJECT)
    (nowhere / "var").mkdir()
    assert resolve_home().path == nowhere / "var"
    assert "checkout" in home_choice().reason


def test_a_checkout_without_var_uses_the_per_user_home(nowhere, tmp_path):
    (nowhere / "pyproject.toml").write_text(PYPROJECT)
    assert resolve_home().path == tmp_path / "state" / "torchsm"


def test_another_projects_var_is_not_a_home(nowhere, tmp_path):
    (nowhere / "pyproject.toml").write_text('[project]\nname = "torchsm-plugin"\n')
    (nowhere / "var").mkdir()
    assert resolve_home().path == tmp_path / "state" / "torchsm"


def test_a_var_holding_a_torchsm_database_is_kept_anywhere(nowhere):
    (nowhere / "var").mkdir()
    (nowhere / "var" / "torchsm.db").touch()
    assert resolve_home().path == nowhere / "var"


def test_an_explicit_home_wins_and_says_so(nowhere, tmp_path, monkeypatch):
    (nowhere / "var").mkdir()
    (nowhere / "var" / "torchsm.db").touch()
    monkeypatch.setenv("TORCHSM_HOME", str(tmp_path / "env"))
    assert (resolve_home().path, home_choice().reason) == (tmp_path / "env", "TORCHSM_HOME")
    assert home_choice(tmp_path / "opt").reason == "--home"
    assert resolve_home(tmp_path / "opt").path == tmp_path / "opt"


def _run(folder: Path, state: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI from `folder` with no home given: no --home, no TORCHSM_HOME."""
    env = Cli(state).env(XDG_STATE_HOME=str(state))
    del env["TORCHSM_HOME"]
    return subprocess.run([*torchsm_executable(), *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60)


def test_init_from_an_empty_folder_creates_the_per_user_home_and_says_why(tmp_path):
    folder, state = tmp_path / "work", tmp_path / "state"
    folder.mkdir()
    done = _run(folder, state, "init")
    assert done.returncode == 0, done.stderr
    assert (state / "torchsm" / "torchsm.db").is_file()
    assert not (folder / "var").exists()
    assert f"home: {state / 'torchsm'} (the per-user default; --home or TORCHSM_HOME " \
           "to choose another)" in done.stdout
    assert os.stat(state / "torchsm").st_mode & 0o777 == 0o700


def test_init_in_a_checkout_with_var_uses_it(tmp_path):
    folder, state = tmp_path / "work", tmp_path / "state"
    (folder / "var").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT)
    done = _run(folder, state, "init")
    assert done.returncode == 0, done.stderr
    assert (folder / "var" / "torchsm.db").is_file()
    assert not state.exists()
    assert f"home: {folder / 'var'} (./var of this torchsm checkout)" in done.stdout


def test_status_with_no_novas_says_where_it_looked(tmp_path):
    folder, state = tmp_path / "work", tmp_path / "state"
    folder.mkdir()
    _run(folder, state, "init")
    done = _run(folder, state, "status")
    assert done.returncode == 0, done.stderr
    assert f"in {state / 'torchsm'} (the per-user default" in done.stdout


def test_doctor_shows_the_home_and_why(tmp_path):
    folder, state = tmp_path / "work", tmp_path / "state"
    folder.mkdir()
    _run(folder, state, "init")
    done = _run(folder, state, "doctor", "--project", str(folder))
    assert f"home: {state / 'torchsm'} (0700, database 0600; the per-user default" \
        in done.stdout
