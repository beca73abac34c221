"""`hooks scan` on hostile trees: megabyte lines, symlink loops, big, unreadable, binary and
non-UTF-8 files (issue 14, finding 11). No timed assertions: a scan that went quadratic
again runs into a generous subprocess timeout that the linear scan never comes near."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from torchsm.hooks import scanner
from torchsm.hooks.scanner import scan_paths


def scan(paths):
    return scanner.scan(paths)

A, S, L, K = "agent-from-hook", "self-reexec", "busy-restart-loop", "clear-api-key"
LINEAR_TIMEOUT_S = 20  # the old scan needed ~100 s for 224 KB; the linear one well under 2 s


def scan_cli(cli, *paths, **kw):
    return cli("hooks", "scan", *map(str, paths), check=False, timeout=LINEAR_TIMEOUT_S, **kw)


def one_line(unit: str, size: int = 1_000_000, end: str = "") -> str:
    return (unit * (size // len(unit) + 1))[:size] + end + "\n"


# --- a. linear time --------------------------------------------------------------------

LONG_LINES = [
    ("claude ", "", 0, set()),                     # an agent word again and again, no flag
    ("claude ", " -p go", 1, {A}),                 # ...and the flag at the very end
    ("os.execv( ", "", 0, set()),
    ("os.execv( ", " sys.argv", 1, {S}),
    ("npx    ", "", 0, set()),
    ("api_key= ", "", 0, set()),
    ("exec     ", "", 0, set()),
    ("'#\" ", "", 0, set()),                       # quotes and hashes for the comment stripper
]


@pytest.mark.parametrize("unit, end, code, rules", LONG_LINES,
                         ids=[r[0] + r[1] for r in LONG_LINES])
def test_a_megabyte_line_is_scanned_in_linear_time(bare_cli, tmp_path, unit, end, code, rules):
    script = tmp_path / "hook.sh"
    script.write_text(one_line(unit, end=end))
    result = scan_cli(bare_cli, script, "--json")
    assert result.code == code, result.err
    assert {f["rule"] for f in result.json()} == rules
    assert all(len(f["text"]) <= scanner.MAX_SHOWN + 1 for f in result.json())


def test_many_open_loops_are_linear(bare_cli, tmp_path):
    """Each endless loop used to rescan the rest of the file for its body."""
    shell = tmp_path / "loops.sh"
    shell.write_text("while true; do\n" * 40_000)
    python = tmp_path / "loops.py"
    python.write_text("".join(" " * (i % 400) + "while True:\n" for i in range(20_000)))
    result = scan_cli(bare_cli, shell, python, "--json")
    assert result.code == 1
    found = result.json()
    assert sum(f["file"] == str(shell) for f in found) == 40_000
    assert sum(f["file"] == str(python) for f in found) == 20_000


def test_a_settings_file_with_many_commands_and_keys_is_linear(bare_cli, tmp_path):
    """Each command was looked up from the top of the file, each key compared with every
    finding before it (the old scan: ~50 s for this file, just under its 2 MB limit)."""
    n = 20_000
    env = ",\n".join(f'"X{i}_API_KEY":"abcdefghijklmnopqrst{i:06d}"' for i in range(n))
    hooks = ",\n".join(f'{{"type":"command","command":"claude -p t{i}"}}' for i in range(n))
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"env": {\n' + env + '\n},\n"hooks": {"Stop": [{"hooks": [\n'
                    + hooks + "\n]}]}\n}\n")
    assert json.loads(path.read_text()) and path.stat().st_size < 2_000_000
    result = scan_cli(bare_cli, path, "--json")
    assert result.code == 1
    found = result.json()
    assert sum(f["rule"] == A for f in found) == n and sum(f["rule"] == K for f in found) == n
    lines = path.read_text().split("\n")
    assert all(f"-p t{i}\"" in lines[f["line"] - 1] for i, f in
               enumerate(sorted((f for f in found if f["rule"] == A), key=lambda f: f["line"])))
    assert all(lines[f["line"] - 1].startswith('"X') for f in found if f["rule"] == K)


def test_the_linear_matchers_agree_with_the_regexes_they_replace():
    """The agent and self-exec rules, rewritten without backtracking, find what the
    original regular expressions found (random lines over the rules' alphabet)."""
    import random
    import re

    agent = re.compile(scanner._AGENT + r"""[^\n|;&]*?(?:^|[\s"',\[])""" + scanner._AGENT_FLAGS
                       + r"""(?=[\s"',\]=]|$)""")
    os_exec = re.compile(r"""\bos\.exec\w*\(.*\bsys\.argv\b""")
    words = ["claude", "codex", "-p", "--print", "-c", "exec", "-m", "--message", " ", " ", "\n",
             "|", ";", "&", '"', "'", ",", "[", "]", "=", "x", ".", "/", "-", "os.execv(",
             "os.exec(", "sys.argv", "sys.argvx", "$", "aider"]
    rng = random.Random(14)
    for _ in range(20_000):
        line = "".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        assert scanner._agent_call(line) == bool(agent.search(line)), repr(line)
        assert scanner._os_exec_argv(line) == bool(os_exec.search(line)), repr(line)


# --- b. symlink loops ------------------------------------------------------------------

def test_a_symlink_loop_is_a_note_and_the_rest_is_scanned(bare_cli, tmp_path):
    tree = tmp_path / "hooks"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "up").symlink_to("..")            # a folder loop
    (tree / "a" / "self").symlink_to("self")        # a link to itself
    (tree / "a" / "ping").symlink_to("pong")        # two links to each other
    (tree / "a" / "pong").symlink_to("ping")
    (tree / "z-bad.sh").write_text("claude -p go\n")
    outside = tmp_path / "shared-hooks"
    outside.mkdir()
    (outside / "restart.sh").write_text('exec "$0" "$@"\n')
    (tree / "b-shared").symlink_to(outside)         # a symlinked folder is followed, once
    (tree / "c-shared-again").symlink_to(outside)
    report = scan([tree])
    assert sorted((Path(f.file).name, f.rule) for f in report.findings) == \
        [("restart.sh", S), ("z-bad.sh", A)]
    notes = "\n".join(map(str, report.notes))
    assert f"{tree / 'a' / 'up'}: symlink loop" in notes
    assert f"{tree / 'a' / 'self'}: symlink loop" in notes
    assert f"{tree / 'c-shared-again'}: " in notes and "already scanned" in notes
    assert not report.unscanned
    result = scan_cli(bare_cli, tree)
    assert result.code == 1 and "z-bad.sh:1: agent-from-hook" in result.out
    assert "torchsm: note: " in result.err and "symlink loop" in result.err
    assert "Traceback" not in result.err
    assert result.err.splitlines()[-1] == "torchsm: error: 2 dangerous patterns found"


def test_a_loop_alone_is_clean_with_a_note(bare_cli, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "loop").symlink_to("../d")
    result = scan_cli(bare_cli, tmp_path / "d")
    assert (result.code, result.out) == (0, "no dangerous patterns found\n")
    assert "symlink loop" in result.err


def test_a_named_symlink_loop_is_not_scanned_and_says_so(bare_cli, tmp_path):
    (tmp_path / "x").symlink_to("x")
    result = scan_cli(bare_cli, tmp_path / "x")
    assert result.code == 1 and "no dangerous patterns found" not in result.out
    assert "symlink loop" in result.err and "Traceback" not in result.err
    assert result.err.splitlines()[-1].startswith("torchsm: error: scan incomplete: 1 file")


def test_a_deep_tree_does_not_recurse(tmp_path):
    folders = [tmp_path / "deep"]
    for _ in range(1200):  # deeper than Python's recursion limit
        folders.append(folders[-1] / "d")
    try:
        for folder in folders:
            folder.mkdir()
        (folders[-1] / "x.sh").write_text("claude -p go\n")
        assert [f.rule for f in scan_paths([folders[0]])] == [A]
    finally:  # pytest's own clean-up of old temp folders recurses: leave nothing this deep
        (folders[-1] / "x.sh").unlink(missing_ok=True)
        for folder in reversed(folders):
            if folder.exists():
                folder.rmdir()


# --- c. big files ----------------------------------------------------------------------

def test_a_file_over_two_megabytes_is_scanned(bare_cli, tmp_path):
    big = tmp_path / "big.sh"
    with big.open("w") as f:
        for n in range(300_000):
            f.write(f"echo line {n} of a long generated script\n")
        f.write("claude -p 'and now an agent'\n")
    assert big.stat().st_size > 3_000_000
    result = scan_cli(bare_cli, big, "--json")
    assert result.code == 1
    assert [(f["line"], f["rule"]) for f in result.json()] == [(300_001, A)]


def test_a_line_longer_than_a_piece_is_scanned_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(scanner, "MAX_LINE_BYTES", 64 * 1024)
    path = tmp_path / "long.sh"
    # one pattern straddles the first boundary, one sits in the last piece, one in a comment
    first = "x" * (64 * 1024 - 5) + " claude -p go " + "y" * 200_000
    path.write_text(f"{first} # claude -p not this\n" + "z" * 150_000 + " exec \"$0\" &\n")
    report = scan([path])
    assert sorted((f.line, f.rule) for f in report.findings) == [(1, A), (2, S)]
    assert any("scanned in pieces" in str(n) for n in report.notes)


MEMORY_PROBE = textwrap.dedent("""
    import resource, sys
    from torchsm.hooks.scanner import scan
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = scan([sys.argv[1]])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(len(report.findings), (after - before) // 1024)
""")


def test_scanning_a_big_file_takes_bounded_memory(tmp_path):
    big = tmp_path / "big.sh"
    line = ("x " * 500_000) + "\n"
    with big.open("w") as f:
        for _ in range(24):
            f.write(line)
        f.write("claude -p go\n")
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(big)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    findings, grown_mb = map(int, proc.stdout.split())
    assert findings == 1
    # read whole, the file would be held at least three times over (bytes, text, lines)
    assert grown_mb < 20, f"the scan of a 24 MB file grew the process by {grown_mb} MB"


# --- unreadable, binary, non-UTF-8, odd names ------------------------------------------

def test_an_unreadable_file_is_a_note_and_an_incomplete_scan(tmp_path, monkeypatch, capsys):
    from torchsm.cli import execute as run

    (tmp_path / "locked.sh").write_text("claude -p go\n")
    (tmp_path / "ok.sh").write_text("echo fine\n")
    if os.geteuid() == 0:  # root reads anything: refuse the open the way the kernel would
        real_open = os.open

        def deny(path, *args, **kw):
            if str(path).endswith("locked.sh"):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kw)

        monkeypatch.setattr(os, "open", deny)
    else:
        (tmp_path / "locked.sh").chmod(0)
    report = scan([tmp_path])
    assert report.findings == [] and [Path(n.file).name for n in report.unscanned] == ["locked.sh"]
    assert "Permission denied" in str(report.unscanned[0])
    assert run(["hooks", "scan", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "no dangerous patterns found" not in out
    assert f"torchsm: note: {tmp_path / 'locked.sh'}: not scanned: Permission denied" in err
    assert err.splitlines()[-1] == ("torchsm: error: scan incomplete: 1 file could not be read "
                                    "(see the notes); no dangerous patterns in the rest")


def test_a_read_error_midway_keeps_what_was_found_and_says_incomplete(tmp_path, monkeypatch):
    path = tmp_path / "flaky.sh"
    path.write_text("claude -p first\n" + "echo x\n" * 10_000)
    real_read = scanner._read_chunk

    def failing(f, size):
        if f.tell() > 0:
            raise OSError(errno.EIO, "Input/output error")
        return real_read(f, size)

    monkeypatch.setattr(scanner, "_read_chunk", failing)
    report = scan([path])
    assert [f.rule for f in report.findings] == [A]
    assert [Path(n.file).name for n in report.unscanned] == ["flaky.sh"]


def test_binary_files_are_skipped_with_a_note(bare_cli, tmp_path):
    (tmp_path / "blob.bin").write_bytes(b"\x7fELF\x00\x00" + b"claude -p go\n" * 10)
    (tmp_path / "ok.sh").write_text("echo fine\n")
    result = scan_cli(bare_cli, tmp_path)
    assert (result.code, result.out) == (0, "no dangerous patterns found\n")
    assert f"torchsm: note: {tmp_path / 'blob.bin'}: binary file, not scanned" in result.err


def test_a_non_utf8_script_is_scanned_with_a_note(bare_cli, tmp_path):
    script = tmp_path / "latin1.sh"
    script.write_bytes("# café\nclaude -p 'encore'\n".encode("latin-1"))
    result = scan_cli(bare_cli, script)
    assert result.code == 1 and f"{script}:2: agent-from-hook" in result.out
    assert f"torchsm: note: {script}: not valid UTF-8" in result.err
    assert "Traceback" not in result.err


def test_odd_settings_commands_never_crash(tmp_path):
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    commands = ["~nosuchuser-xyz/hook.sh", "/tmp/\x00nul.sh", "/" + "a" * 5000 + "/x.sh",
                "/dev/null", "claude -p 'caf\u00e9 \u2028 next'"]
    settings = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": c}
                                              for c in commands]}]}}
    path = project / ".claude" / "settings.json"
    path.write_text(json.dumps(settings, indent=2, ensure_ascii=False))
    [finding] = scan_paths([project])
    assert finding.rule == A and finding.line == path.read_text().split("\n").index(
        next(line for line in path.read_text().split("\n") if "caf" in line)) + 1


def test_fifos_and_deep_json_are_harmless(bare_cli, tmp_path):
    os.mkfifo(tmp_path / "pipe.sh")  # opening it to read would block for ever
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "bom.sh").write_bytes(b"\xef\xbb\xbfclaude -p go\n")
    result = scan_cli(bare_cli, tmp_path, "--json")
    assert result.code == 1 and "Traceback" not in result.err
    assert [(Path(f["file"]).name, f["line"]) for f in result.json()] == [("bom.sh", 1)]


def test_a_named_fifo_is_not_read(bare_cli, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    result = scan_cli(bare_cli, tmp_path / "pipe")
    assert result.code == 1 and "not a regular file" in result.err and "Traceback" not in result.err


def test_hostile_names_and_texts_print_safely(bare_cli, tmp_path):
    """A file name that is not UTF-8, escape sequences in a line, a lone surrogate in a
    settings command: printed as visible escapes, never a crash or a raw escape."""
    folder = os.fsencode(tmp_path)
    with open(os.path.join(folder, b"caf\xe9-\x1b[2J.sh"), "wb") as f:
        f.write(b"claude -p '\x1b]0;pwned\x07'\n")
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text(
        '{"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "claude -p \\ud800"}]}]}}')
    result = scan_cli(bare_cli, tmp_path)
    assert result.code == 1 and "Traceback" not in result.err and "internal error" not in result.err
    assert "\x1b" not in result.out and "\\x1b" in result.out
    as_json = scan_cli(bare_cli, tmp_path, "--json")
    assert as_json.code == 1 and len(as_json.json()) == 2
