"""`queue import` is safe twice by content, not by path, and reads a bounded amount
(issue 20, finding 11): a copy, a moved or renamed file, or the same lines through a pipe
import nothing again; /dev/zero (here: a device with its numbers, in the test's folder)
is one clear line, not the machine's memory."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import threading

from helpers import ZERO_DEVICE, Cli, char_device, rows, torchsm_executable
from torchsm.user_files import MAX_READ_BYTES

LINES = 'Write the guide\nWORK_PROCESSED: Fix the typo\n{"text": "Ship it"}\nsame\nsame\n'


def imported(cli: Cli, path) -> dict:
    return cli("queue", "import", str(path), "--json").json()


def test_a_copy_of_an_imported_file_imports_nothing(cli: Cli, tmp_path):
    original = tmp_path / "queue.txt"
    original.write_text(LINES)
    assert imported(cli, original)["added"] == 5
    copy = tmp_path / "elsewhere" / "queue-copy.txt"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    assert (imported(cli, copy)["added"], imported(cli, copy)["duplicates"]) == (0, 5)
    moved = tmp_path / "moved.txt"
    original.rename(moved)
    assert imported(cli, moved)["added"] == 0
    assert rows(cli, "SELECT count(*) FROM work_items") == [(5,)]


def test_a_copy_that_grew_imports_only_its_new_lines(cli: Cli, tmp_path):
    original = tmp_path / "queue.txt"
    original.write_text(LINES)
    imported(cli, original)
    grown = tmp_path / "grown.txt"
    grown.write_text(LINES + "same\nbrand new\n")  # a third `same` is a new item
    assert imported(cli, grown)["added"] == 2


def test_lines_through_a_pipe_are_recognised_too(cli: Cli, tmp_path):
    original = tmp_path / "queue.txt"
    original.write_text(LINES)
    imported(cli, original)
    result = subprocess.run([*torchsm_executable(), "queue", "import", "/dev/stdin", "--json"],
                            input=LINES, capture_output=True, text=True, env=cli.env(),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"added": 0' in result.stdout and '"duplicates": 5' in result.stdout


def test_a_fifo_is_read_as_a_stream(cli: Cli, tmp_path):
    fifo = tmp_path / "queue.fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "w") as f:
            f.write("from a fifo\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert imported(cli, fifo)["added"] == 1
    writer.join(timeout=10)


def test_items_imported_by_path_before_are_still_recognised(cli: Cli, tmp_path):
    """Earlier versions keyed a line by the file's path: such items stay duplicates."""
    path = tmp_path / "queue.txt"
    path.write_text("old item\n")
    key = hashlib.sha256(f"{path.resolve()}\0{1}\0old item".encode()).hexdigest()
    conn = sqlite3.connect(cli.home / "torchsm.db")
    with conn:
        conn.execute("INSERT INTO work_items (text, priority, priority_rank, status, attempts,"
                     " max_attempts, created_at, updated_at, source_key) VALUES ('old item',"
                     " 'medium', 2, 'pending', 0, 3, 0, 0, ?)", (key,))
    conn.close()
    assert (imported(cli, path)["added"], imported(cli, path)["duplicates"]) == (0, 1)


def test_an_endless_device_is_one_clear_line_and_bounded(cli: Cli, tmp_path):
    zero = char_device(tmp_path / "zero", ZERO_DEVICE)
    argv = ["prlimit", f"--as={1024 ** 3}", *torchsm_executable(), "queue", "import", str(zero)]
    result = subprocess.run(argv, capture_output=True, text=True, env=cli.env(), timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr == (f"torchsm: error: {zero} is larger than "
                             f"{MAX_READ_BYTES // 1024 ** 2} MiB: too large for torchsm to "
                             "read\n")
    assert rows(cli, "SELECT count(*) FROM work_items") == [(0,)]
