"""`torchsm doctor` on hostile files and binaries (issue 20, finding 7): a FIFO for
settings.json, a symlink to an endless device, a `--claude` that hangs or talks without
end. Doctor finishes, says what it found, and leaves no process behind. Devices are made
in the test's folder, never the host's /dev."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from helpers import ZERO_DEVICE, Cli, char_device, torchsm_executable
from torchsm.observe import doctor

MEMORY_CAP = 1024 ** 3  # the doctor under test may not take more: a runaway read fails fast


def capped_doctor(cli: Cli, project: Path, claude: Path) -> subprocess.CompletedProcess:
    """`torchsm doctor --json` with its address space capped, so that reading without end
    is a quick failure rather than the machine's memory."""
    argv = ["prlimit", f"--as={MEMORY_CAP}", *torchsm_executable(), "doctor", "--json",
            "--project", str(project), "--claude", str(claude)]
    return subprocess.run(argv, capture_output=True, text=True, env=cli.env(), timeout=60,
                          stdin=subprocess.DEVNULL)


def checks(proc: subprocess.CompletedProcess) -> dict[str, dict]:
    assert proc.returncode in (0, 1) and "internal error" not in proc.stderr, proc.stderr
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def replace_settings(project: Path, make) -> Path:
    settings = project / ".claude" / "settings.local.json"  # `hooks install`s default
    settings.unlink()
    make(settings)
    return settings


def test_a_fifo_settings_file_is_reported_not_waited_on(cli, healthy):
    project, claude = healthy
    settings = replace_settings(project, os.mkfifo)
    found = checks(capped_doctor(cli, project, claude))
    assert found["hooks"]["ok"] is False and "is a FIFO" in found["hooks"]["detail"]
    assert stat.S_ISFIFO(os.lstat(settings).st_mode)


def test_a_settings_symlink_to_an_endless_device_is_reported(cli, healthy, tmp_path):
    project, claude = healthy
    zero = char_device(tmp_path / "zero", ZERO_DEVICE)
    replace_settings(project, lambda path: path.symlink_to(zero))
    found = checks(capped_doctor(cli, project, claude))
    assert found["hooks"]["ok"] is False
    assert "is a character device" in found["hooks"]["detail"]


def test_a_claude_that_talks_without_end_is_read_bounded(cli, healthy, tmp_path):
    project, _ = healthy
    chatty = tmp_path / "chatty-claude"
    chatty.write_text("#!/bin/sh\necho '2.1.332 (Claude Code)'\nexec cat /dev/zero\n")
    chatty.chmod(0o755)
    started = time.monotonic()
    found = checks(capped_doctor(cli, project, chatty))
    assert found["claude"]["ok"] is False
    assert found["claude"]["detail"] == f"{chatty} --version printed more than 64 KiB"
    assert time.monotonic() - started < 30


def alive(pid: int) -> bool:
    """Running, and not a zombie nobody reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_claude_that_hangs_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    hanging = tmp_path / "hanging-claude"
    hanging.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nsleep 300\n")
    hanging.chmod(0o755)
    started = time.monotonic()
    check = doctor.check_claude(str(hanging), timeout_s=1)
    assert check.ok is False and "did not answer within 1 s" in check.detail
    assert time.monotonic() - started < 20
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(child):
        os.kill(child, 9)
        pytest.fail("the hanging claude's child outlived doctor")
