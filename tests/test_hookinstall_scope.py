"""`hooks install --scope project|local|user` (default local): machine-specific absolute
paths go where Claude Code keeps them for this machine (settings.local.json, or the
user's settings), the team-shared .claude/settings.json only when asked; backups live in
the torchsm home, never where `git add .claude` picks them up; and an install beside a
hook `hooks scan` flags says so."""

import json
import subprocess

import pytest

from torchsm.hooks.installer import EVENTS


@pytest.fixture
def project(tmp_path):
    found = tmp_path / "project"
    found.mkdir()
    subprocess.run(["git", "init", "-q", str(found)], check=True)
    return found


def git_sees(project) -> str:
    return subprocess.run(["git", "-C", str(project), "status", "--porcelain",
                           "--untracked-files=all"], capture_output=True, text=True,
                          check=True).stdout


def install(cli, project, *more, **env):
    return cli("hooks", "install", "--nova", "torch", "--project", str(project), "--json",
               *more, **env).json()


def test_the_default_scope_is_this_machine_only_and_git_sees_nothing(torch_cli, project):
    done = install(torch_cli, project)
    local = project / ".claude" / "settings.local.json"
    assert done["settings"] == str(local) and done["scope"] == "local"
    assert set(json.loads(local.read_text())["hooks"]) == set(EVENTS)
    assert not (project / ".claude" / "settings.json").exists()
    install(torch_cli, project, "--nova", "torch")  # idempotent
    assert git_sees(project) == ""


def test_the_project_scope_writes_the_shared_file_and_its_backups_stay_out_of_git(
        torch_cli, project):
    shared = project / ".claude" / "settings.json"
    shared.parent.mkdir()
    shared.write_text('{"model": "opus"}\n')
    subprocess.run(["git", "-C", str(project), "add", "."], check=True)
    done = install(torch_cli, project, "--scope", "project")
    assert done["settings"] == str(shared) and json.loads(shared.read_text())["model"] == "opus"
    backup = done["backup"]
    assert backup.startswith(str(torch_cli.home) + "/") and json.loads(
        open(backup).read()) == {"model": "opus"}
    assert sorted(p.name for p in (project / ".claude").iterdir()) == ["settings.json"]
    assert git_sees(project) == "A  .claude/settings.json\n" or git_sees(project).startswith(
        "AM .claude/settings.json")


def test_the_user_scope_writes_claude_codes_user_settings(torch_cli, project, tmp_path):
    config_dir = tmp_path / "claude-config"
    done = install(torch_cli, project, "--scope", "user", CLAUDE_CONFIG_DIR=str(config_dir))
    assert done["settings"] == str(config_dir / "settings.json")
    assert set(json.loads((config_dir / "settings.json").read_text())["hooks"]) == set(EVENTS)
    assert git_sees(project) == ""


def test_installing_beside_a_runaway_hook_warns(torch_cli, project):
    local = project / ".claude" / "settings.local.json"
    local.parent.mkdir()
    local.write_text(json.dumps({"hooks": {"Stop": [{"hooks": [
        {"type": "command", "command": "claude -p 'keep going'"}]}]}}))
    result = torch_cli("hooks", "install", "--nova", "torch", "--project", str(project))
    assert result.code == 0 and "installed torchsm hooks for torch" in result.out
    assert ("torchsm: warning: " + str(local) + ":") in result.err
    assert "agent-from-hook" in result.err and "torchsm hooks scan" in result.err


def test_a_bad_scope_is_a_usage_error(torch_cli, project):
    result = torch_cli.fails("hooks", "install", "--nova", "torch", "--project", str(project),
                             "--scope", "team", code=2)
    assert "Invalid value for '--scope'" in result.err
