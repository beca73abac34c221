"""Issue 16 point 6: `torchsm doctor` passes a healthy installation and names each problem
with what to do about it; exit 1 when anything is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import Cli, claude_of_version
from torchsm.config import Home
from torchsm.storage import database, run_files


def doctor(cli: Cli, project: Path, claude: Path | str, *args: str):
    return cli("doctor", "--project", str(project), "--claude", str(claude), *args,
               check=False)


def failed(result) -> dict[str, dict]:
    report = json.loads(result.out)
    return {c["name"]: c for c in report["checks"] if not c["ok"]}


def test_a_healthy_installation_passes(cli, healthy):
    project, claude = healthy
    result = doctor(cli, project, claude)
    assert (result.code, result.err) == (0, ""), result.out
    assert "FAIL" not in result.out
    assert "ok    claude: " in result.out and "version 2.1.332" in result.out


def test_json_shape(cli, healthy):
    project, claude = healthy
    report = json.loads(doctor(cli, project, claude, "--json").out)
    assert report["ok"] is True
    names = [c["name"] for c in report["checks"]]
    assert names == ["home", "config", "schema", "mirror", "hooks echo", "hooks scan",
                     "supervisor echo", "claude"]
    assert all(set(c) == {"name", "ok", "detail", "fix"} for c in report["checks"])


def test_wrong_permissions(cli, home, healthy):
    project, claude = healthy
    home.path.chmod(0o755)
    home.db_path.chmod(0o644)
    result = doctor(cli, project, claude)
    assert result.code == 1
    assert result.err == "torchsm: error: 1 problem found: home\n"
    assert "FAIL  home: " in result.out and "0755 (want 0700)" in result.out
    assert "0644 (want 0600)" in result.out and "fix: chmod 700" in result.out


def test_schema_behind(tmp_path, healthy):
    project, claude = healthy
    old = Home(tmp_path / "old")
    old.path.mkdir(mode=0o700)
    old.db_path.touch(mode=0o600)
    assert database.upgrade(old, revision="0008") == "0008"
    result = doctor(Cli(old.path), project, claude, "--json")
    assert result.code == 1
    problem = failed(result)["schema"]
    assert "at 0008" in problem["detail"] and "torchsm db upgrade" in problem["fix"]


def test_hooks_missing(cli, healthy, tmp_path):
    _, claude = healthy
    bare = tmp_path / "bare"
    bare.mkdir()
    problem = failed(doctor(cli, bare, claude, "--json"))["hooks"]
    assert "torchsm hooks install --nova NAME" in problem["fix"]


def test_some_hooks_missing(cli, healthy):
    project, claude = healthy
    settings = project / ".claude" / "settings.local.json"
    data = json.loads(settings.read_text())
    del data["hooks"]["StopFailure"]
    settings.write_text(json.dumps(data))
    problem = failed(doctor(cli, project, claude, "--json"))["hooks echo"]
    assert problem["detail"] == "missing hooks: stop-failure"
    assert "torchsm hooks install --nova echo" in problem["fix"]


def test_a_dangerous_hook(cli, healthy):
    project, claude = healthy
    settings = project / ".claude" / "settings.local.json"
    data = json.loads(settings.read_text())
    data["hooks"]["Stop"].append({"hooks": [{"type": "command",
                                             "command": "claude -p 'keep going'"}]})
    settings.write_text(json.dumps(data))
    result = doctor(cli, project, claude, "--json")
    assert result.code == 1
    assert set(failed(result)) == {"hooks scan"}
    assert "dangerous pattern" in failed(result)["hooks scan"]["detail"]


def test_no_supervisor(cli, home, healthy):
    project, claude = healthy
    run_files.remove_plan(home, "echo")
    result = doctor(cli, project, claude, "--json")
    problem = failed(result)["supervisor echo"]
    assert problem["detail"] == "no supervisor runs"
    assert "torchsm run echo" in problem["fix"]


def test_a_dead_supervisor(cli, home, healthy):
    project, claude = healthy
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_files.write_plan(home, "echo", {"nova": "echo", "pid": gone.pid, "state": "waiting"})
    assert "supervisor echo" in failed(doctor(cli, project, claude, "--json"))


def test_claude_missing(cli, healthy, tmp_path):
    project, _ = healthy
    result = doctor(cli, project, tmp_path / "nowhere" / "claude")
    assert result.code == 1
    assert result.err == "torchsm: error: 1 problem found: claude\n"
    assert "FAIL  claude: " in result.out and "--claude PATH" in result.out


def test_claude_too_old(cli, healthy, tmp_path):
    project, _ = healthy
    old = claude_of_version(tmp_path / "..", version="1.0.9")
    problem = failed(doctor(cli, project, old, "--json"))["claude"]
    assert "1.0.9 is older than 2.1.0" in problem["detail"]


def test_no_home(bare_cli, tmp_path):
    result = bare_cli("doctor", "--json", check=False)
    assert result.code == 1
    problem = failed(result)["home"]
    assert "torchsm" in problem["fix"] and "init" in problem["fix"]
