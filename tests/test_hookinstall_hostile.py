"""`hooks install` on settings files a real machine has: private modes, symlinks, read-only
files, earlier backups, user hooks that look like torchsm's, broken JSON (issue 14, finding 8)."""

from __future__ import annotations

import json
import os
import shlex
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from torchsm.hooks import installer
from torchsm.hooks.installer import EVENTS, hook_command


def settings_path(project: Path) -> Path:
    return project / ".claude" / "settings.json"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def install(cli, project: Path, nova: str = "torch", **kw):
    return cli("hooks", "install", "--nova", nova, "--project", str(project),
               "--scope", "project", "--json", **kw).json()


@contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".torchsm-backup" in p.name)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def project(cli, tmp_path):
    cli("nova", "add", "torch")
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True)
    return project


# --- a. modes --------------------------------------------------------------------------

def test_a_private_settings_file_stays_private(cli, project):
    path = settings_path(project)
    path.write_text('{"model": "opus"}\n')
    path.chmod(0o600)
    install(cli, project)
    assert mode_of(path) == 0o600
    assert json.loads(path.read_text())["model"] == "opus"


def test_modes_under_umask_000_are_never_group_or_world_writable(cli, tmp_path):
    cli("nova", "add", "torch")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with umask(0):
        install(cli, fresh)  # creates .claude/ and settings.json
        assert mode_of(settings_path(fresh)) == 0o600
        assert mode_of(fresh / ".claude") & 0o022 == 0
        private = tmp_path / "private"
        (private / ".claude").mkdir(parents=True)
        settings_path(private).write_text("{}")
        settings_path(private).chmod(0o600)
        install(cli, private)
        assert mode_of(settings_path(private)) == 0o600
        shared = tmp_path / "shared"
        (shared / ".claude").mkdir(parents=True)
        settings_path(shared).write_text("{}")
        settings_path(shared).chmod(0o666)
        done = install(cli, shared)
        # readable as before, but no longer writable by anyone else
        assert mode_of(settings_path(shared)) == 0o644
        assert done["mode"] == "0644"
        [backup] = backups(installer.backup_folder(cli.home, settings_path(shared)))
        assert mode_of(backup) == 0o644 and mode_of(backup.parent) == 0o700
        assert [p.name for p in (shared / ".claude").iterdir()] == ["settings.json"]


def test_the_temp_file_has_its_final_mode_before_the_rename(project, home, monkeypatch):
    path = settings_path(project)
    path.write_text("{}")
    path.chmod(0o640)
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src).parent, mode_of(Path(src)), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(installer.os, "replace", spy)
    with umask(0):
        installer.install(project, "torch", home.path, scope="project")
    assert seen == [(path.parent, 0o640, path)]
    assert mode_of(path) == 0o640 and leftovers(path.parent) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_root_keeps_the_owner_of_a_users_settings(cli, project):
    path = settings_path(project)
    path.write_text("{}")
    os.chown(path, 65534, 65534)
    done = install(cli, project)
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (65534, 65534)
    # the backup is in the torchsm home, the home owner's alone
    assert os.stat(done["backup"]).st_uid == os.geteuid()
    assert mode_of(Path(done["backup"]).parent) == 0o700


# --- b. symlinks -----------------------------------------------------------------------

def test_a_symlinked_settings_file_is_written_through_and_the_link_kept(cli, project, tmp_path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "claude-settings.json"
    real.write_text('{"model": "opus"}\n')
    real.chmod(0o600)
    link = settings_path(project)
    link.symlink_to(os.path.relpath(real, link.parent))
    done = install(cli, project)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(real, link.parent)
    written = json.loads(real.read_text())
    assert written["model"] == "opus" and set(written["hooks"]) == set(EVENTS)
    assert mode_of(real) == 0o600
    assert leftovers(dotfiles) == [] and leftovers(link.parent) == []
    assert json.loads(Path(done["backup"]).read_text()) == {"model": "opus"}
    # idempotent through the link too
    assert install(cli, project)["changed"] is False and link.is_symlink()


def test_a_dangling_or_looping_symlink_is_refused(cli, project):
    link = settings_path(project)
    link.symlink_to("nowhere.json")
    result = cli.fails("hooks", "install", "--nova", "torch", "--project", str(project),
                       "--scope", "project")
    assert result.err.startswith("torchsm: error: ") and result.err.count("\n") == 1
    assert "nowhere.json" in result.err
    assert link.is_symlink() and not (link.parent / "nowhere.json").exists()
    link.unlink()
    (link.parent / "loop").symlink_to("settings.json")
    link.symlink_to("loop")
    result = cli.fails("hooks", "install", "--nova", "torch", "--project", str(project),
                       "--scope", "project")
    assert result.err.startswith("torchsm: error: ") and "symlink loop" in result.err
    assert sorted(p.name for p in link.parent.iterdir()) == ["loop", "settings.json"]


# --- c. read-only ----------------------------------------------------------------------

def test_a_read_only_settings_file_is_refused_and_left_alone(cli, project):
    path = settings_path(project)
    path.write_text('{"model": "opus"}\n')
    path.chmod(0o444)
    result = cli.fails("hooks", "install", "--nova", "torch", "--project", str(project),
                       "--scope", "project")
    assert result.err.startswith(f"torchsm: error: {path} is read-only; ")
    assert result.err.count("\n") == 1 and result.out == ""
    assert path.read_text() == '{"model": "opus"}\n' and mode_of(path) == 0o444
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]


def test_a_read_only_file_that_already_has_the_hooks_is_fine(cli, project):
    install(cli, project)
    path = settings_path(project)
    path.chmod(0o444)
    assert install(cli, project)["changed"] is False


# --- d. backups ------------------------------------------------------------------------

def test_backups_are_kept_bounded_and_made_only_on_change(project, home):
    path = settings_path(project)
    path.write_text('{"model": "opus"}\n')
    (path.parent / "settings.json.20240101-000000.bak").write_text("an old-style backup")
    (path.parent / "settings.json.torchsm-backup-mine").write_text("the user's own file")
    before = []
    for n in range(8):  # all at the same instant: names must still not collide
        before.append(path.read_bytes())
        done = installer.install(project, f"nova{n}", home.path, now=1_700_000_000.0,
                                 scope="project")
        assert done["changed"] and done["backup"]
        assert Path(done["backup"]).read_bytes() == before[-1]
    kept = backups(installer.backup_folder(home.path, path))
    assert len(kept) == 5
    assert sorted(p.read_bytes() for p in kept) == sorted(before[-5:])
    # what is not torchsm's stays
    assert (path.parent / "settings.json.20240101-000000.bak").read_text() == "an old-style backup"
    assert (path.parent / "settings.json.torchsm-backup-mine").read_text() == "the user's own file"
    # idempotent runs add none
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["settings.json", "settings.json.20240101-000000.bak",
                     "settings.json.torchsm-backup-mine"]  # no backup beside the settings
    for _ in range(3):
        assert installer.install(project, "nova7", home.path, scope="project")["changed"] is False
    assert sorted(p.name for p in path.parent.iterdir()) == names
    assert len(backups(installer.backup_folder(home.path, path))) == 5


def test_two_quick_cli_runs_keep_both_backups(cli, project):
    path = settings_path(project)
    path.write_text('{"model": "opus"}\n')
    cli("nova", "add", "echo")
    first = install(cli, project)
    second = install(cli, project, nova="echo")
    assert first["backup"] != second["backup"]
    assert json.loads(Path(first["backup"]).read_text()) == {"model": "opus"}
    assert set(json.loads(Path(second["backup"]).read_text())["hooks"]) == set(EVENTS)


# --- e. whose hooks --------------------------------------------------------------------

def user_entry(command: str) -> dict:
    return {"type": "command", "command": command}


def test_only_entries_torchsm_wrote_are_replaced(cli, project, tmp_path):
    home = str(cli.home)
    [this_torchsm] = installer.torchsm_command()[:1]
    users = [
        "torchsm hook stop --nova torch",                                  # on PATH, by hand
        "/opt/other/bin/torchsm hook stop --nova torch",                   # another torchsm
        f"{this_torchsm} --home {home} hook stop --nova torch --verbose",  # extra args
        f"{this_torchsm} --home /elsewhere hook stop --nova torch",        # another home, unmarked
        "echo 'torchsm hook stop --nova torch' >> ~/hook.log",             # merely mentions it
        "my-torchsm-wrapper hook stop --nova torch",
        "notify-send torchsm",
        f"{this_torchsm} --home {home} hook stop --nova torch; echo and more",
    ]
    # what earlier versions wrote: this torchsm, this home, no mark
    legacy = (f"{shlex.join(installer.torchsm_command())} --home {shlex.quote(home)} "
              "hook stop --nova torch")
    other_venv = hook_command("stop", "torch", Path(home)).replace(this_torchsm,
                                                                   "/old/venv/bin/torchsm")
    other_nova = hook_command("stop", "echo", Path(home))
    path = settings_path(project)
    path.write_text(json.dumps({"hooks": {
        "Stop": [{"hooks": [user_entry(c) for c in users]},
                 {"hooks": [user_entry(legacy)]},
                 {"hooks": [user_entry(other_venv), user_entry(other_nova)]}],
        "SubagentStop": [{"hooks": [user_entry(hook_command("stop", "torch", Path(home)))]}],
    }}))
    install(cli, project)
    stop = json.loads(path.read_text())["hooks"]["Stop"]
    commands = [h["command"] for group in stop for h in group["hooks"]]
    assert commands[:len(users)] == users  # every user entry kept, in place
    assert legacy not in commands and other_venv not in commands
    assert other_nova in commands
    ours = [c for c in commands if installer.owned_by_torchsm(c, Path(home)) == ("stop", "torch")]
    assert ours == [hook_command("stop", "torch", Path(home))]
    # a torchsm `stop` entry the user moved under SubagentStop is theirs now
    subagent = json.loads(path.read_text())["hooks"]["SubagentStop"]
    assert subagent[0]["hooks"][0]["command"] == hook_command("stop", "torch", Path(home))
    assert len(subagent) == 2
    assert install(cli, project)["changed"] is False


def test_the_written_commands_carry_the_mark_and_still_run_the_handler(cli, project):
    install(cli, project)
    for claude_event, event in EVENTS.items():
        [group] = json.loads(settings_path(project).read_text())["hooks"][claude_event]
        command = group["hooks"][0]["command"]
        assert command.endswith(" " + installer.MARK)
        assert shlex.split(command.split("exec ", 1)[-1], comments=True)[-4:] == \
            ["hook", event, "--nova", "torch"]


# --- broken files ----------------------------------------------------------------------

BROKEN = [
    b"{not json",
    b'{"model": "op\xffus"}',                 # not UTF-8
    b"[" * 100_000 + b"]" * 100_000,          # deeper than the parser goes
    b'{"hooks": ["Stop"]}',                   # hooks is not an object
    b'{"hooks": {"Stop": {"hooks": []}}}',    # an event's entry is not a list
    b'{"hooks": {"Stop": ["notify-send"]}}',  # a group is not an object
    b'{"model": NaN}',                        # not JSON, although Python reads it
    b'["a", "list"]',
]


@pytest.mark.parametrize("content", BROKEN, ids=lambda c: c[:24].decode("latin-1"))
def test_a_broken_settings_file_is_one_clear_line_and_untouched(cli, project, content):
    path = settings_path(project)
    path.write_bytes(content)
    path.chmod(0o600)
    result = cli.fails("hooks", "install", "--nova", "torch", "--project", str(project),
                       "--scope", "project")
    assert result.err.startswith(f"torchsm: error: {path}") and result.err.count("\n") == 1
    assert "internal error" not in result.err and "nothing was changed" in result.err
    assert path.read_bytes() == content and mode_of(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]


# --- a project that is not there -------------------------------------------------------

def test_a_project_that_does_not_exist_is_refused_not_created(cli, tmp_path):
    cli("nova", "add", "torch")
    missing = tmp_path / "typo" / "project"
    result = cli.fails("hooks", "install", "--nova", "torch", "--project", str(missing),
                       "--scope", "project")
    assert result.err == (f"torchsm: error: the project {missing} does not exist: create it "
                          f"first (mkdir -p {missing}) or check the path; nothing was "
                          "changed\n")
    assert not (tmp_path / "typo").exists()


def test_a_project_without_claude_settings_gets_its_claude_folder(cli, tmp_path):
    cli("nova", "add", "torch")
    project = tmp_path / "project"
    project.mkdir()
    install(cli, project)
    assert set(json.loads(settings_path(project).read_text())["hooks"]) == set(EVENTS)
