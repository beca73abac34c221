"""The mirror: entries recorded in SQLite, copied to Redis streams (CONTRACT.md "Mirror
and file queues").

`Mirror` documents the contract once; `RedisMirror` publishes to a Redis or Dragonfly
server and falls back to `FileQueueMirror` (HOME/queue/STREAM.jsonl) when the server is
unreachable; `NullMirror` is the mirror turned off. `open_mirror` chooses.

Exactly once: every write is one Lua script call that XADDs only when `dedup:<event_id>`
does not exist and then sets it (with a TTL); scripts run atomically, so an entry sent
twice (a replay killed halfway, a reply lost in an outage, two racing replays) lands once.
Explicit increasing stream ids would do the same without keys, but break as soon as two
processes publish concurrently.

Order: a home's publishers and replays take one lock (flock on HOME/queue/mirror.lock). A
caller holds it, through `ordered()`, from before its SQLite commit until after publishing,
so the stream receives entries in commit order; and while anything is queued, the queue is
replayed before a new entry is sent, so an outage never lets later entries overtake.

Outage memory: every CLI call is a new process, so a failure is remembered in
HOME/queue/outage.json; for `mirror.outage_memory_s` later calls go straight to the queue
instead of paying a connect timeout each.

The wire client is torchsm.mirror.redis_wire, not redis-py, which costs ~105 ms to import
(FIELD-NOTES).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext

from torchsm.config import Config, Home, MirrorConfig, cluster_host, in_cluster
from torchsm.errors import (ConfigError, MirrorOff, MirrorRefused, MirrorUnavailable,
                            MirrorUnreachable)
from torchsm.mirror import redis_wire
from torchsm.mirror.file_queue import FileQueue
from torchsm.mirror.shared_state import MirrorLock, MirrorMemory
from torchsm.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from pathlib import Path
    from typing import Any, ContextManager

OPS_STREAM = "torch.continuous.ops"
MESSAGES_STREAM = "nova.coordination.messages"
STREAMS = (OPS_STREAM, MESSAGES_STREAM)
STATUS_KEY = "nova.status.{}"
DEDUP_KEY = "dedup:{}"
FIELDS = ("event_id", "type", "nova", "at", "data")

# Where `publish` put an entry.
IN_STREAM, IN_QUEUE, DISCARDED = "stream", "queue", "off"

BATCH_LINES = 1000
# A batch of 1,000 script calls takes ~10 ms on a healthy server; a reply slower than this
# means trouble, and publishers are waiting for the lock meanwhile.
BATCH_REPLY_TIMEOUT_S = 2.0

# KEYS: dedup key, stream [, status key]
# ARGV: dedup ttl (s), maxlen (0: uncapped), status ('' deletes), status ttl (ms, 0: none),
#       then the entry's field/value pairs
# The dedup key is set after the XADD: a script that fails halfway keeps what it wrote, and
# a key set before a failed XADD would make every replay skip an entry that never landed.
PUBLISH_SCRIPT = """
local unpack = unpack or table.unpack
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[2] == '0' then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 5))
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
if KEYS[3] then
  if ARGV[3] == '' then redis.call('DEL', KEYS[3])
  elseif ARGV[4] == '0' then redis.call('SET', KEYS[3], ARGV[3])
  else redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4]) end
end
return 1
"""


def new_event_id(now: float | None = None) -> str:
    """A unique id that sorts by creation time: 12 hex digits of milliseconds, 20 random."""
    now = time.time() if now is None else now
    return f"{int(now * 1000):012x}{os.urandom(10).hex()}"


def origin(config: Config) -> dict[str, str]:
    """What an entry on the coordination stream carries of where it was written: `host`
    when the home is a host of a cluster (so each host's intake skips its own entries),
    nothing otherwise (the entry as before)."""
    return {"host": cluster_host(config)} if in_cluster(config) else {}


def iso_time(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with microseconds (`2026-11-26T06:20:00.123456Z`)."""
    # time.strftime rather than datetime, which the hot path would import just for this
    micros = round(ts * 1_000_000)
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


def epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@record
class Entry:
    """One mirrored record. `data` may carry `status` (and `status_ttl_s`): the value
    `nova.status.<nova>` takes when the entry lands ('' deletes the key)."""

    event_id: str
    type: str
    nova: str
    at: str
    data: dict[str, Any]

    @classmethod
    def new(cls, type: str, nova: str, data: dict[str, Any], at: float,
            event_id: str | None = None) -> "Entry":
        return cls(event_id or new_event_id(at), type, nova, iso_time(at), data)

    def data_json(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))

    def fields(self) -> dict[str, str]:
        """The stream entry's fields; `data` as JSON text."""
        return {"event_id": self.event_id, "type": self.type, "nova": self.nova,
                "at": self.at, "data": self.data_json()}

    def to_line(self) -> bytes:
        """The file-queue form: one JSON object, the same fields, `data` as an object."""
        return json.dumps({"event_id": self.event_id, "type": self.type, "nova": self.nova,
                           "at": self.at, "data": self.data},
                          ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_line(cls, line: bytes) -> "Entry":
        """Parse a queue line; ValueError when it is not a whole, valid entry."""
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError("not an entry object")
        return cls._checked(obj, obj.get("data"))

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "Entry":
        """Parse a stream entry's fields; ValueError when they are not a whole, valid entry
        (anything that reaches the server can XADD to a stream)."""
        return cls._checked(fields, json.loads(fields.get("data") or "{}"))

    @classmethod
    def _checked(cls, fields: dict[str, Any], data: Any) -> "Entry":
        values = [fields.get(name) for name in FIELDS[:4]]
        if not isinstance(data, dict):
            raise ValueError("data is not an object")
        if not all(isinstance(v, str) for v in values) or not (values[0] and values[1] and values[3]):
            raise ValueError("missing or empty field")
        return cls(*values, data)


def script_args(stream: str, entry: Entry, settings: MirrorConfig, now: float) -> list:
    """KEYS and ARGV of PUBLISH_SCRIPT for one entry (after the script or its sha)."""
    keys = [DEDUP_KEY.format(entry.event_id), stream]
    status, status_ttl_ms = _status_change(entry, now)
    if status is not None:
        keys.append(STATUS_KEY.format(entry.nova))
    argv = [int(settings.dedup_ttl_s), settings.maxlen, status or "", status_ttl_ms]
    for name, value in entry.fields().items():
        argv += [name, value]
    return [len(keys), *keys, *argv]


def _status_change(entry: Entry, now: float) -> tuple[str | None, int]:
    status = entry.data.get("status")
    if not isinstance(status, str):
        return None, 0
    ttl = entry.data.get("status_ttl_s")
    if not ttl:
        return status, 0
    # A status with a TTL replayed late keeps its original expiry, or is skipped when past.
    left = epoch(entry.at) + float(ttl) - now
    return (status, int(left * 1000)) if left > 0 else (None, 0)


class FlushReport:
    """What a replay did, per stream: entries that landed, entries already in the stream
    (sent before by a replay that was cut short), corrupt lines moved aside."""

    def __init__(self):
        self.published = dict.fromkeys(STREAMS, 0)
        self.duplicates = dict.fromkeys(STREAMS, 0)
        self.rejected = dict.fromkeys(STREAMS, 0)
        self.rejected_files: dict[str, str] = {}

    def as_json(self) -> dict[str, Any]:
        totals = {name: sum(getattr(self, name).values())
                  for name in ("published", "duplicates", "rejected")}
        streams = {s: {"published": self.published[s], "duplicates": self.duplicates[s],
                       "rejected": self.rejected[s]} for s in STREAMS}
        return {**totals, "streams": streams, "rejected_files": self.rejected_files}


# A stream entry as read back: (stream id, entry); None: malformed (Mirror.latest).
StreamEntry = tuple[str, "Entry | None"]


class Mirror:
    """Where an entry goes once SQLite holds it. Every implementation keeps this contract:

    - `publish(stream, entry)` returns promptly and never raises because a server is
      down, refused or silent: the entry lands in the stream, or in the file queue to be
      replayed later, or nowhere when the mirror is off. It returns which (IN_STREAM,
      IN_QUEUE, DISCARDED). It raises only when the entry cannot be kept at all (the
      queue file cannot be written).
    - Entries published while `ordered()` is held land in the order they were published,
      across all processes of the home; hold it from before the SQLite commit until after
      `publish` so the stream order is the commit order. It is reentrant.
    - An entry's `event_id` lands in its stream at most once, however often it is sent.
    - `flush()` replays the file queues in order; afterwards every queued entry is in its
      stream exactly once. It raises MirrorUnavailable (server unreachable) or MirrorOff.
    - `queued()` counts the entries waiting in the file queues, per stream.
    - `latest(stream, count, before)` and `after(stream, after, block_s)` read a stream
      back, newest first or oldest first, as (stream id, Entry) pairs; they return None
      when there is no stream to read (no server), and the caller reads SQLite instead.
      An entry that is not one torchsm can read (any client may XADD) comes back as
      (stream id, None): the caller skips it and still moves past its id.
    - `close()` (or leaving a `with` block) releases the connection.
    """

    def ordered(self) -> ContextManager:
        return nullcontext()

    def publish(self, stream: str, entry: Entry, now: float | None = None) -> str:
        raise NotImplementedError

    def flush(self, now: float | None = None) -> FlushReport:
        raise NotImplementedError

    def queued(self) -> dict[str, int]:
        return dict.fromkeys(STREAMS, 0)

    def latest(self, stream: str, count: int, before: str | None = None
               ) -> list[StreamEntry] | None:
        return None

    def after(self, stream: str, after: str, block_s: float = 0) -> list[StreamEntry] | None:
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> "Mirror":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullMirror(Mirror):
    """`redis_url = "off"`: entries stay in SQLite only."""

    def publish(self, stream: str, entry: Entry, now: float | None = None) -> str:
        return DISCARDED

    def flush(self, now: float | None = None) -> FlushReport:
        raise MirrorOff('the mirror is off (redis_url = "off"): there is nothing to flush to')


class FileQueueMirror(Mirror):
    """HOME/queue/STREAM.jsonl: what is kept while no server can be reached."""

    def __init__(self, queue_dir: Path, lock: MirrorLock | None = None):
        self.queue_dir = queue_dir
        self.lock = lock or MirrorLock(queue_dir / "mirror.lock")
        self.queues = {stream: FileQueue(queue_dir, stream) for stream in STREAMS}

    def ordered(self) -> ContextManager:
        return self.lock

    def publish(self, stream: str, entry: Entry, now: float | None = None) -> str:
        with self.lock:
            self.queues[stream].append(entry.to_line())
        return IN_QUEUE

    def flush(self, now: float | None = None) -> FlushReport:
        raise MirrorUnavailable("the mirror server is remembered as unreachable")

    def queued(self) -> dict[str, int]:
        return {stream: queue.pending_count() for stream, queue in self.queues.items()}

    def has_pending(self) -> bool:
        return any(queue.has_pending() for queue in self.queues.values())


class RedisMirror(Mirror):
    """A Redis or Dragonfly server; its file queue takes over while it is unreachable."""

    def __init__(self, url: str, settings: MirrorConfig, fallback: FileQueueMirror,
                 memory: MirrorMemory):
        try:
            self.endpoint = redis_wire.parse_url(url)
        except redis_wire.BadUrl as exc:
            raise ConfigError(f"redis_url: {exc}") from None
        self.url = redis_wire.mask_url(url)
        self.settings = settings
        self.fallback = fallback
        self.memory = memory
        self._conn: redis_wire.Connection | None = None
        self._sha: str | None = None
        self._down = False

    def ordered(self) -> ContextManager:
        return self.fallback.lock

    def publish(self, stream: str, entry: Entry, now: float | None = None) -> str:
        now = time.time() if now is None else now
        with self.fallback.lock:
            # Checked again under the lock: a process that waited here while another one
            # timed out should not pay the same timeout.
            if self.memory.outage_remembered(now, self.settings.outage_memory_s):
                self._down = True
            if not self._down:
                self._replay_pending(now)
            if not self._down:
                try:
                    self._connection().call("EVAL", PUBLISH_SCRIPT,
                                            *script_args(stream, entry, self.settings, now))
                    self.memory.record_success(now)
                    return IN_STREAM
                except redis_wire.Unreachable as exc:
                    self._lose_server(exc, now)
                except redis_wire.ReplyError as exc:
                    # The server is up but will not take it (e.g. the key holds another
                    # type): keep the entry; `mirror flush` reports the refusal.
                    self._lose_server(exc, now)
            return self.fallback.publish(stream, entry, now)

    def flush(self, now: float | None = None) -> FlushReport:
        now = time.time() if now is None else now
        report = FlushReport()
        self._script_sha(now)  # reach the server before reading any queue
        for stream in STREAMS:
            while True:
                with self.fallback.lock:  # per batch, so publishers are not held up long
                    if self._replay_batch(stream, report, now):
                        break
        return report

    def queued(self) -> dict[str, int]:
        return self.fallback.queued()

    def ping(self) -> float:
        """Milliseconds to connect and hear PONG; raises redis_wire.Unreachable."""
        start = time.perf_counter()
        try:
            self._connection().call("PING")
        except redis_wire.ReplyError as exc:
            raise redis_wire.Unreachable(str(exc)) from None
        return (time.perf_counter() - start) * 1000

    def latest(self, stream: str, count: int, before: str | None = None
               ) -> list[StreamEntry] | None:
        end = _previous_id(before) if before else "+"
        if end is None:
            return []
        return self._read(lambda: self._connection().call(
            "XREVRANGE", stream, end, "-", "COUNT", count))

    def after(self, stream: str, after: str, block_s: float = 0) -> list[StreamEntry] | None:
        def read():
            conn = self._connection()
            if not block_s:
                reply = conn.call("XREAD", "COUNT", 1000, "STREAMS", stream, after)
            else:
                reply = conn.call_many([("XREAD", "COUNT", 1000, "BLOCK", int(block_s * 1000),
                                         "STREAMS", stream, after)],
                                       timeout_s=block_s + conn.timeout_s)[0]
                if isinstance(reply, redis_wire.ReplyError):
                    raise reply
            return reply[0][1] if reply else []
        return self._read(read)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- internals -------------------------------------------------------------------

    def _connection(self) -> redis_wire.Connection:
        if self._conn is None:
            self._conn = redis_wire.Connection.open(self.endpoint, self.settings.connect_timeout_s)
            self._sha = None
        return self._conn

    def _lose_server(self, exc: Exception, now: float) -> None:
        self._down = True
        self.close()
        self.memory.record_outage(now, str(exc))

    def _replay_pending(self, now: float) -> None:
        """Replay the queues before a new entry goes out, so it cannot overtake them."""
        if not self.fallback.has_pending():
            return
        try:
            self.flush(now)
        except (MirrorUnavailable, MirrorRefused):
            self._down = True

    def _replay_batch(self, stream: str, report: FlushReport, now: float) -> bool:
        """Replay one batch of `stream`'s queue; True when the queue is empty."""
        queue = self.fallback.queues[stream]
        batch = queue.read_batch(BATCH_LINES)
        if not batch.lines:
            return queue.empty_if_replayed(batch.end)
        entries, corrupt = _parse_lines(batch.lines)
        replies = self._send_batch(stream, entries, now)
        queue.reject(corrupt)
        queue.mark_replayed(batch.end)
        report.published[stream] += sum(replies)
        report.duplicates[stream] += len(replies) - sum(replies)
        report.rejected[stream] += len(corrupt)
        if corrupt:
            report.rejected_files[stream] = str(queue.rejected_path)
        return False

    def _script_sha(self, now: float) -> str:
        """Load the publish script (once per connection); raises MirrorUnavailable."""
        if self._sha is None:
            try:
                conn = self._connection()
                # a silent server costs the short timeout here, not a batch's
                self._sha = _text(conn.call("SCRIPT", "LOAD", PUBLISH_SCRIPT))
            except (redis_wire.Unreachable, redis_wire.ReplyError) as exc:
                self._lose_server(exc, now)
                raise MirrorUnreachable(self.url, exc) from None
        return self._sha

    def _send_batch(self, stream: str, entries: list[Entry], now: float) -> list[int]:
        sha = self._script_sha(now)
        commands = [("EVALSHA", sha, *script_args(stream, e, self.settings, now))
                    for e in entries]
        try:
            replies = self._connection().call_many(commands, BATCH_REPLY_TIMEOUT_S)
        except redis_wire.Unreachable as exc:
            self._lose_server(exc, now)
            raise MirrorUnreachable(self.url, exc) from None
        refused = next((r for r in replies if isinstance(r, redis_wire.ReplyError)), None)
        if refused is not None:
            # Nothing of this batch is marked replayed; entries that did land are
            # recognised as duplicates next time.
            self._lose_server(refused, now)
            raise MirrorRefused(stream, refused)
        self.memory.record_success(now)
        return replies

    def _read(self, request) -> list[StreamEntry] | None:
        if self._down:
            return None
        try:
            self._replay_pending(time.time())  # reads see everything published so far
            if self._down:
                return None
            return [(_text(sid), _entry_or_none(values)) for sid, values in request()]
        except redis_wire.Unreachable as exc:
            self._lose_server(exc, time.time())
            return None


def _parse_lines(lines: list[bytes]) -> tuple[list[Entry], list[bytes]]:
    entries, corrupt = [], []
    for line in lines:
        try:
            entries.append(Entry.from_line(line))
        except (ValueError, UnicodeDecodeError):
            corrupt.append(line)
    return entries, corrupt


def _entry_or_none(values: list[bytes]) -> Entry | None:
    try:
        return Entry.from_fields(_pairs(values))
    except ValueError:  # UnicodeDecodeError and json's errors are ValueErrors too
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(values: list[bytes]) -> dict[str, str]:
    return {_text(values[i]): _text(values[i + 1]) for i in range(0, len(values) - 1, 2)}


def _previous_id(stream_id: str) -> str | None:
    """The stream id just before `stream_id` (XREVRANGE's exclusive form, portably)."""
    ms, _, seq = stream_id.partition("-")
    ms_i, seq_i = int(ms), int(seq or 0)
    if seq_i > 0:
        return f"{ms_i}-{seq_i - 1}"
    return f"{ms_i - 1}-18446744073709551615" if ms_i > 0 else None


def open_mirror(home: Home, config: Config, *, now: float | None = None,
                use_outage_memory: bool = True) -> Mirror:
    """The mirror for this home and config: NullMirror when `redis_url` is "off"; the
    file queue while an outage is remembered (unless `use_outage_memory` is False, as for
    `mirror flush` and `mirror status`, which always try the server); else RedisMirror."""
    if config.redis_url == "off":
        return NullMirror()
    queue = FileQueueMirror(home.queue_dir)
    memory = MirrorMemory(home.queue_dir, config.redis_url)
    now = time.time() if now is None else now
    if use_outage_memory and memory.outage_remembered(now, config.mirror.outage_memory_s):
        return queue
    return RedisMirror(config.redis_url, config.mirror, queue, memory)


def mirror_status(home: Home, config: Config, now: float | None = None) -> dict[str, Any]:
    """The mirror as `mirror status` shows it: URL (password masked), whether the server
    answers now, the last success and outage, and what waits in the file queues."""
    _check_home(home)
    now = time.time() if now is None else now
    queue = FileQueueMirror(home.queue_dir)
    status: dict[str, Any] = {
        "url": redis_wire.mask_url(config.redis_url), "enabled": config.redis_url != "off",
        "reachable": None, "latency_ms": None, "error": None,
        "last_success": None, "last_outage": None, "outage_remembered": False,
        "queued": queue.queued(),
        "rejected": {s: q.rejected_count() for s, q in queue.queues.items()},
    }
    if not status["enabled"]:
        return status
    memory = MirrorMemory(home.queue_dir, config.redis_url)
    with RedisMirror(config.redis_url, config.mirror, queue, memory) as server:
        try:
            status["latency_ms"] = round(server.ping(), 3)
            status["reachable"] = True
            memory.record_success(now)  # the next publisher tries the server (and replays)
        except redis_wire.Unreachable as exc:
            status["reachable"], status["error"] = False, str(exc)
            memory.record_outage(now, str(exc))
    outage = memory.last_outage()
    success = memory.last_success()
    status["last_success"] = iso_time(success) if success else None
    if outage:
        status["last_outage"] = {"at": iso_time(outage["at"]), "error": outage.get("error")}
        status["outage_remembered"] = memory.outage_remembered(
            now, config.mirror.outage_memory_s)
    return status


def flush(home: Home, config: Config, now: float | None = None) -> FlushReport:
    """Deliver what waits in the outbox (torchsm.mirror.outbox: entries whose writer died before
    delivering them), then replay the file queues to the server now, whatever outage is
    remembered."""
    from torchsm.mirror import outbox

    _check_home(home)
    outbox.deliver(home, config, now)
    with open_mirror(home, config, use_outage_memory=False) as out:
        try:
            return out.flush(now)
        except (MirrorUnavailable, MirrorRefused) as exc:
            waiting = sum(out.queued().values())
            raise exc.amended(f"{waiting} entr{'y stays' if waiting == 1 else 'ies stay'} "
                              "queued") from None


def _check_home(home: Home) -> None:
    """The mirror commands read a home; they never make one."""
    if not home.is_initialised():
        from torchsm.errors import HomeNotInitialised

        raise HomeNotInitialised(home.path)
