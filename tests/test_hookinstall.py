import json
import shlex
import subprocess

from torchsm.hooks.installer import EVENTS


def settings_of(project):
    return json.loads((project / ".claude" / "settings.json").read_text())


def test_install_writes_every_event_with_absolute_quoted_paths(cli, tmp_path):
    cli("nova", "add", "torch")
    project = tmp_path / "my project"
    project.mkdir()
    done = cli("hooks", "install", "--nova", "torch", "--project", str(project),
               "--scope", "project", "--json").json()
    assert done["changed"] and done["backup"] is None
    hooks = settings_of(project)["hooks"]
    assert set(hooks) == set(EVENTS)
    for claude_event, event in EVENTS.items():
        [group] = hooks[claude_event]
        [entry] = group["hooks"]
        command = entry["command"]
        argv = shlex.split(command.split("exec ", 1)[-1], comments=True)
        assert argv[0].startswith("/") and argv[-4:] == ["hook", event, "--nova", "torch"]
        assert argv[argv.index("--home") + 1] == str(cli.home)
    assert hooks["StopFailure"][0]["hooks"][0]["command"].startswith("trap '' TERM HUP; exec ")


def test_install_keeps_user_settings_backs_up_and_is_idempotent(cli, tmp_path):
    cli("nova", "add", "torch")
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    mine = {"model": "opus", "permissions": {"allow": ["Bash(ls)"]},
            "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
                      "PreToolUse": [{"matcher": "Bash", "hooks": [
                          {"type": "command", "command": "./lint.sh"}]}]}}
    (project / ".claude" / "settings.json").write_text(json.dumps(mine))
    first = cli("hooks", "install", "--nova", "torch", "--project", str(project),
                "--scope", "project", "--json").json()
    assert first["backup"] and json.loads(open(first["backup"]).read()) == mine
    after = settings_of(project)
    assert after["model"] == "opus" and after["permissions"] == mine["permissions"]
    assert after["hooks"]["Stop"][0] == mine["hooks"]["Stop"][0]
    assert after["hooks"]["PreToolUse"][0] == mine["hooks"]["PreToolUse"][0]
    assert len(after["hooks"]["Stop"]) == 2
    again = cli("hooks", "install", "--nova", "torch", "--project", str(project),
                "--scope", "project", "--json").json()
    assert again["changed"] is False and settings_of(project) == after
    assert "already installed" in cli("hooks", "install", "--nova", "torch", "--project",
                                      str(project), "--scope", "project").out
    # a second Nova's hooks sit beside the first's
    cli("nova", "add", "echo")
    cli("hooks", "install", "--nova", "echo", "--project", str(project), "--scope", "project")
    assert len(settings_of(project)["hooks"]["Stop"]) == 3


def test_install_refuses_bad_input_and_changes_nothing(cli, tmp_path):
    cli("nova", "add", "torch")
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    settings = project / ".claude" / "settings.json"
    settings.write_text("{not json")
    result = cli.fails("hooks", "install", "--nova", "torch", "--project", str(project),
                       "--scope", "project")
    assert result.err.startswith(f"torchsm: error: {settings} is not valid JSON")
    assert settings.read_text() == "{not json"
    assert cli.fails("hooks", "install", "--nova", "ghost", "--project", str(project),
                     "--scope", "project").err == \
        "torchsm: error: no Nova named 'ghost'\n"


def test_installed_stop_failure_command_survives_sigterm(cli, tmp_path):
    """The wrapper ignores TERM before torchsm starts, as Claude Code kills it at once."""
    cli("nova", "add", "torch")
    project = tmp_path / "p"
    project.mkdir()
    cli("hooks", "install", "--nova", "torch", "--project", str(project), "--scope", "project")
    command = settings_of(project)["hooks"]["StopFailure"][0]["hooks"][0]["command"]
    probe = command.split("exec ", 1)[0] + "sleep 0.3; echo survived"
    proc = subprocess.Popen(["sh", "-c", probe], stdout=subprocess.PIPE, text=True)
    import time
    time.sleep(0.1)
    proc.terminate()
    assert proc.communicate(timeout=5)[0] == "survived\n"


def test_hand_wrapper_runs_the_handler_and_is_clean(cli, tmp_path):
    from helpers import REPO, FIXTURES, torchsm_executable

    cli("nova", "add", "torch")
    cli("queue", "add", "a task")
    wrapper = REPO / "hooks" / "torchsm-hook"
    stdin = (FIXTURES / "claude-code-hooks" / "Stop.json").read_text()
    env = cli.env(TORCHSM=torchsm_executable()[0]) if len(torchsm_executable()) == 1 else None
    if env is None:
        import pytest
        pytest.skip("needs the installed console script")
    proc = subprocess.run([str(wrapper), "stop", "torch"], input=stdin, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["decision"] == "block"
    # torchsm's own hook scripts pass its own scanner
    assert cli("hooks", "scan", str(REPO / "hooks")).out == "no dangerous patterns found\n"
