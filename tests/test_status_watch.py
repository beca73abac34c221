"""Issue 16 point 5: `torchsm status --watch` redraws until Ctrl-C, which ends it with
exit 0 and no traceback."""

from __future__ import annotations

import os
import pty
import signal
import subprocess

from helpers import Cli, default_ctrl_c, torchsm_executable

HEADER = "every 0.1 s, Ctrl-C to stop"


def start(cli: Cli, **kw) -> subprocess.Popen:
    return subprocess.Popen([*torchsm_executable(), "status", "--watch", "--interval", "0.1"],
                            env=cli.env(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=default_ctrl_c, **kw)


def test_frames_until_ctrl_c_on_a_pipe(cli):
    cli("nova", "add", "echo")
    proc = start(cli, stdout=subprocess.PIPE, text=True)
    lines = []
    while sum(line.startswith(HEADER) for line in lines) < 2:
        line = proc.stdout.readline()
        assert line, "ended before two frames"
        lines.append(line)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert err == ""  # no traceback, no error line
    first = lines[:len(lines) - 1]  # the first frame: up to the second header
    assert first[1].startswith("NOVA") and first[2].startswith("echo")
    assert first[-1] == "\n"  # frames are separated by a blank line
    assert "\x1b" not in "".join(lines) + rest  # no escape sequences into a pipe


def test_the_screen_is_cleared_on_a_terminal(cli):
    cli("nova", "add", "echo")
    leader, follower = pty.openpty()
    proc = start(cli, stdout=follower)
    os.close(follower)
    seen = b""
    while seen.count(b"\x1b[H\x1b[2J") < 2:
        chunk = os.read(leader, 4096)
        assert chunk, "ended before two frames"
        seen += chunk
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    os.close(leader)
    assert proc.returncode == 0
    assert err == b""
    assert b"echo" in seen
