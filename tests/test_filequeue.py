"""The file queues: concurrent appends from many processes, torn and corrupt lines."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from torchsm.mirror import streams
from torchsm.mirror.file_queue import FileQueue
from torchsm.mirror.shared_state import MirrorMemory
from torchsm.mirror.streams import MESSAGES_STREAM, OPS_STREAM, FileQueueMirror

from mirror_support import NOW, config_for, entry, stream_entries

WRITERS = 8
LINES_EACH = 300


def _append_raw(directory: str, writer: int) -> None:
    queue = FileQueue(Path(directory), OPS_STREAM)
    for i in range(LINES_EACH):
        # sizes from a few bytes to well past PIPE_BUF and a page
        padding = "x" * ((i * 997 + writer * 131) % 20_000)
        queue.append(json.dumps({"writer": writer, "i": i, "pad": padding}).encode())


def _publish(directory: str, writer: int) -> None:
    queue = FileQueueMirror(Path(directory))
    for i in range(LINES_EACH):
        queue.publish(OPS_STREAM, entry(i, nova=f"w{writer}"), NOW)


def _run_writers(target, directory: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=(str(directory), w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def test_concurrent_raw_appends_never_tear_or_interleave(tmp_path):
    _run_writers(_append_raw, tmp_path)
    data = (tmp_path / f"{OPS_STREAM}.jsonl").read_bytes()
    assert data.endswith(b"\n")
    # Without the mirror lock the torn-line check can race and add a blank line (which
    # replay skips); what must never happen is a torn or interleaved line.
    records = [json.loads(line) for line in data.split(b"\n") if line]
    assert len(records) == WRITERS * LINES_EACH
    for w in range(WRITERS):
        assert [r["i"] for r in records if r["writer"] == w] == list(range(LINES_EACH))


def test_concurrent_publishers_keep_each_ones_order(home):
    _run_writers(_publish, home.queue_dir)
    queue = FileQueue(home.queue_dir, OPS_STREAM)
    parsed = [streams.Entry.from_line(line) for line in queue.read_batch(10**6).lines]
    assert len(parsed) == WRITERS * LINES_EACH == queue.pending_count()
    for w in range(WRITERS):
        assert [e.data["i"] for e in parsed if e.nova == f"w{w}"] == list(range(LINES_EACH))


def test_a_torn_last_line_does_not_swallow_the_next_entry(home, redis_db):
    path = home.queue_dir / f"{OPS_STREAM}.jsonl"
    path.write_bytes(entry(0).to_line() + b"\n" + entry(1).to_line()[:25])  # crash mid-write
    FileQueueMirror(home.queue_dir).publish(OPS_STREAM, entry(2), NOW)
    report = streams.flush(home, config_for(redis_db.url), NOW)
    assert stream_entries(redis_db, OPS_STREAM) == [entry(0), entry(2)]
    assert report.rejected[OPS_STREAM] == 1
    rejected = (home.queue_dir / f"{OPS_STREAM}.jsonl.rejected").read_bytes()
    assert rejected == entry(1).to_line()[:25] + b"\n"


CORRUPT = [b"not json at all", b'{"event_id": "x"}', b"[1, 2, 3]",
           b'{"event_id": "", "type": "t", "nova": "n", "at": "a", "data": {}}',
           b'{"event_id": "e", "type": "t", "nova": "n", "at": "a", "data": "text"}',
           b"\xff\xfe binary"]


def test_corrupt_lines_are_moved_aside_and_counted(home, redis_db, cli):
    valid = [entry(i) for i in range(4)]
    lines = [valid[0].to_line(), CORRUPT[0], valid[1].to_line(), b"", *CORRUPT[1:],
             valid[2].to_line(), b"   ", valid[3].to_line()]
    (home.queue_dir / f"{OPS_STREAM}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = cli("mirror", "flush", TORCHSM_REDIS_URL=redis_db.url)
    rejected_file = home.queue_dir / f"{OPS_STREAM}.jsonl.rejected"
    assert result.out == (f"replayed 4 entries\n"
                          f"moved {len(CORRUPT)} corrupt lines to {rejected_file}\n")
    assert stream_entries(redis_db, OPS_STREAM) == valid
    assert rejected_file.read_bytes() == b"".join(line + b"\n" for line in CORRUPT)
    assert (home.queue_dir / f"{OPS_STREAM}.jsonl").stat().st_size == 0
    status = cli("mirror", "status", "--json", TORCHSM_REDIS_URL=redis_db.url).json()
    assert status["rejected"] == {OPS_STREAM: len(CORRUPT), MESSAGES_STREAM: 0}
    assert status["queued"] == {OPS_STREAM: 0, MESSAGES_STREAM: 0}


def test_an_offset_past_the_end_replays_from_the_start(home, redis_db):
    # a crash between removing the offset and emptying the file can leave either order;
    # replaying again is harmless, skipping would lose entries
    queue = FileQueue(home.queue_dir, OPS_STREAM)
    queue.append(entry(0).to_line())
    queue.mark_replayed(10**9)
    assert queue.has_pending() and queue.pending_count() == 1
    streams.flush(home, config_for(redis_db.url), NOW)
    assert stream_entries(redis_db, OPS_STREAM) == [entry(0)]


def test_queue_files_are_private(home):
    FileQueueMirror(home.queue_dir).publish(OPS_STREAM, entry(0), NOW)
    MirrorMemory(home.queue_dir, "redis://x").record_outage(NOW, "down")
    for path in home.queue_dir.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
