"""A host's intake: what other hosts put on `nova.coordination.messages` for this home
(messages to its Novas or to `all`, shared memories added, strengthened or forgotten),
taken into its own SQLite through a consumer group of its own, in stream order.

One group per host (`torch.host.HOST`, consumer HOST), created at the stream's start the
first time (XGROUP CREATE ... 0 MKSTREAM): a host that joins late learns the shared
memories still on the stream, and the messages for its Novas too (the stream's MAXLEN
bounds how far back that goes). The group keeps the host's position on the server, so a
host that was away (no supervisor, or the server gone and back with its data) catches up
in order at its next pass; a server that lost everything starts the group again at 0,
which costs a re-read, never a double.

At least once, and idempotent, so exactly once in effect: an entry is acknowledged only
after its SQLite write committed; a pass killed in between leaves it pending for this
consumer, and the next pass reads its own pending entries (id 0) before new ones (`>`).
Writing again changes nothing: a message is kept by its event_id, a memory's entry by its
event_id and its writer, a forget finds nothing left to forget.

What an entry means here is decided purely (`meaning`), then applied (`apply`). The
entries a host wrote itself carry `host` (torchsm.mirror.streams.origin) and are skipped;
an entry from before hosts were named applies idempotently anyway (its rows are here).
Anything else on the stream (transitions, broadcasts of other kinds) means nothing here;
what is malformed is counted and acknowledged, never a traceback.

One pass at a time per host: a flock on HOME/run/cluster-intake.lock; a supervisor's beat
skips its pass while another process of the host takes in.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, NamedTuple

from torchsm.cluster import directory
from torchsm.cluster.server import Server, connect
from torchsm.cluster.settings import cluster_settings, enabled, server_url
from torchsm.config import Config, Home, is_host_name
from torchsm.dreams import memory
from torchsm.errors import (ClusterNotEnabled, ClusterRefused, ClusterUnreachable,
                            InvalidMemory)
from torchsm.mirror.streams import MESSAGES_STREAM, Entry, epoch
from torchsm.names import is_name
from torchsm.storage import run_files, store
from torchsm.work.messages import BROADCAST, MESSAGE_TYPE

GROUP_PREFIX = "torch.host."
BATCH = 200  # entries read, written in one transaction, and acknowledged together
# the longest memory key, writer and source a host of torchsm writes, with room to spare:
# what another host sends is kept here and shown with the memory, so it is checked
MAX_KEY_CHARS, MAX_WORD_CHARS = 200, 100

# what an entry means for this home
MESSAGE, MEMORY, FORGOTTEN = "messages", "memories", "forgotten"  # applied here
APPLIED = (MESSAGE, MEMORY, FORGOTTEN)
OWN, ELSEWHERE, OTHER, MALFORMED = "own", "elsewhere", "other", "malformed"  # skipped
SKIPPED = (OWN, ELSEWHERE, OTHER, MALFORMED)
COUNTED = (MESSAGE, MEMORY, FORGOTTEN, OWN, ELSEWHERE, OTHER, MALFORMED)


class Meaning(NamedTuple):
    what: str
    fields: dict[str, Any] = {}


def group_of(host: str) -> str:
    return f"{GROUP_PREFIX}{host}"


# --- what an entry means (pure) ----------------------------------------------------------

def meaning(entry: Entry | None, host: str, novas: set[str]) -> Meaning:
    """What `entry` (None: unreadable) means for host `host`, whose Novas are `novas`."""
    if entry is None:
        return Meaning(MALFORMED)
    origin = entry.data.get("host")
    if origin is not None and not (isinstance(origin, str) and is_host_name(origin)):
        return Meaning(MALFORMED)
    if origin == host:
        return Meaning(OWN)
    reader = _READERS.get(entry.type)
    return Meaning(OTHER) if reader is None else reader(entry, origin, novas)


def _message(entry: Entry, origin: str | None, novas: set[str]) -> Meaning:
    data = entry.data
    sender, recipient, text = data.get("from"), data.get("to"), data.get("text")
    at = _epoch(entry.at)
    if not _strings(sender, recipient, text) or not text.strip() or at is None \
            or not is_name(sender):
        return Meaning(MALFORMED)
    if recipient != BROADCAST and recipient not in novas:
        return Meaning(ELSEWHERE)
    return Meaning(MESSAGE, {"event_id": entry.event_id, "sender": sender,
                             "recipient": recipient, "text": text, "at": at})


def _memory(entry: Entry, origin: str | None, novas: set[str]) -> Meaning:
    data = entry.data
    kind, text, key, at = data.get("kind"), data.get("text"), data.get("key"), _epoch(entry.at)
    source, writer = data.get("source"), data.get("strengthened_by", data.get("writer"))
    if kind not in memory.KINDS or not _strings(text, key) or not 0 < len(key) <= MAX_KEY_CHARS \
            or at is None or not _strings_or_none(source, writer) or not _readable(text) \
            or any(len(word or "") > MAX_WORD_CHARS for word in (source, writer)):
        return Meaning(MALFORMED)
    return Meaning(MEMORY, {"event_id": entry.event_id, "kind": kind, "text": text,
                            "key": key, "source": source, "writer": _from(writer, origin),
                            "at": at})


def _forgotten(entry: Entry, origin: str | None, novas: set[str]) -> Meaning:
    key, why = entry.data.get("key"), entry.data.get("why")
    if not _strings(key) or not key or not _strings_or_none(why):
        return Meaning(MALFORMED)
    return Meaning(FORGOTTEN, {"key": key, "why": f"forgotten on host {origin or 'unnamed'}:"
                                                   f" {why or 'no reason given'}"})


_READERS = {MESSAGE_TYPE: _message, memory.MEMORY_TYPE: _memory,
            memory.FORGOTTEN_TYPE: _forgotten}


def _from(writer: str | None, origin: str | None) -> str:
    """A writer of another host, named with it (`torch@a`): two hosts' Novas of one name
    are two writers."""
    writer = writer or "unknown"
    return f"{writer}@{origin}" if origin else writer


def _strings(*values: Any) -> bool:
    return all(isinstance(value, str) for value in values)


def _strings_or_none(*values: Any) -> bool:
    return all(value is None or isinstance(value, str) for value in values)


def _readable(text: str) -> bool:
    try:
        memory.check_text(text)
    except InvalidMemory:
        return False
    return True


def _epoch(at: str) -> float | None:
    try:
        return epoch(at)
    except (ValueError, OverflowError, OSError):
        return None


# --- applying it -------------------------------------------------------------------------

def apply(conn, config: Config, meant: Meaning, now: float) -> bool:
    """Write what `meant` says in the caller's transaction; whether anything changed
    (False: it was here already, or it means nothing here)."""
    if meant.what == MESSAGE:
        return store.keep_message(conn, **meant.fields)
    if meant.what == MEMORY:
        return memory.take_in_shared(conn, config, **meant.fields)
    if meant.what == FORGOTTEN:
        return memory.forget_shared(conn, meant.fields["key"], meant.fields["why"], now) > 0
    return False


# --- a pass ------------------------------------------------------------------------------

class Taken(NamedTuple):
    counts: dict[str, int]  # by meaning: applied ones, then skipped ones
    reread: int  # entries read again: delivered before, never acknowledged
    busy: bool = False  # another process of this host was taking in: nothing done

    def as_json(self) -> dict[str, Any]:
        return {**self.counts, "reread": self.reread, "busy": self.busy}


def take_in(home: Home, config: Config, server: Server | None = None, *, wait: bool = True,
            now: float | None = None) -> Taken:
    """One pass of this host's intake: its own pending entries, then the new ones, until
    none is left. `server`: a connection to use (else one of its own); `wait`: for
    another process's pass to end (else return `busy`). ClusterUnreachable when the
    server is away: nothing is lost, the group keeps the position."""
    if not enabled(config):
        raise ClusterNotEnabled()
    host = cluster_settings(config).host
    with _one_at_a_time(home, wait) as mine:
        if not mine:
            return Taken(dict.fromkeys(COUNTED, 0), 0, busy=True)
        with nullcontext(server) if server else connect(server_url(config)) as server, \
                store.open_store(home, config.db.lock_timeout_s) as db:
            return Intake(server, host).run(db, config, time.time() if now is None else now)


def take_in_quietly(home: Home, config: Config) -> Taken | None:
    """A pass before a person reads messages or memories, so they see what arrived;
    nothing when the home is no host of a cluster, another process of the host is taking
    in, or the server is away (what SQLite holds answers; the group keeps the rest)."""
    if not enabled(config):
        return None
    try:
        return take_in(home, config, wait=False)
    except (ClusterUnreachable, ClusterRefused):
        return None


def with_each_beat(home: Home, config: Config, report: Callable[..., None]
                   ) -> Callable[[Server], None]:
    """A supervisor's pass with each heartbeat, on the beat's connection: skipped while
    another process of the host takes in; what it took in is reported."""
    def take_in_now(server: Server) -> None:
        taken = take_in(home, config, server, wait=False)
        said = [f"{taken.counts[what]} {what}" for what in (*APPLIED, MALFORMED)
                if taken.counts[what]]
        if said:
            report("cluster", f"took in from other hosts: {', '.join(said)}",
                   **{what: taken.counts[what] for what in (*APPLIED, MALFORMED)})
    return take_in_now


class Intake:
    """One host's consumer group on the coordination stream."""

    def __init__(self, server: Server, host: str):
        self.server, self.host, self.group = server, host, group_of(host)

    def run(self, db: store.Store, config: Config, now: float) -> Taken:
        novas = db.read(store.nova_names)
        directory.publish(self.server, self.host, novas)
        self._join()
        counts = dict.fromkeys(COUNTED, 0)
        reread = self._drain(db, config, novas, now, counts, "0")
        self._drain(db, config, novas, now, counts, ">")
        return Taken(counts, reread)

    def _drain(self, db: store.Store, config: Config, novas: set[str], now: float,
               counts: dict[str, int], start: str) -> int:
        """Read from `start` (`0`: this consumer's pending entries, `>`: new ones) until
        nothing is left; how many entries were read."""
        read, after = 0, start
        while batch := self._read(after):
            meant = [meaning(_entry(fields), self.host, novas) for _, fields in batch]
            changed = db.write(lambda conn: [apply(conn, config, m, now) for m in meant])
            for m, did in zip(meant, changed):
                if did or m.what in SKIPPED:  # one applied again changed nothing
                    counts[m.what] += 1
            self._ack([entry_id for entry_id, _ in batch])
            read += len(batch)
            after = after if after == ">" else batch[-1][0]
        return read

    def _join(self) -> None:
        """The group, from the stream's start, unless it is there already."""
        try:
            with self.server.answers():
                self.server.client.xgroup_create(MESSAGES_STREAM, self.group, id="0",
                                                 mkstream=True)
        except ClusterRefused as exc:
            if "BUSYGROUP" not in exc.message:
                raise

    def _read(self, after: str) -> list[tuple[bytes, dict]]:
        with self.server.answers():
            reply = self.server.client.xreadgroup(self.group, self.host,
                                                  {MESSAGES_STREAM: after}, count=BATCH)
        return reply[0][1] if reply else []

    def _ack(self, ids: list[bytes]) -> None:
        with self.server.answers():
            self.server.client.xack(MESSAGES_STREAM, self.group, *ids)


def _entry(fields: dict | None) -> Entry | None:
    """A stream entry's fields as an Entry; None when they are not a whole one (a pending
    entry trimmed away reads as no fields)."""
    try:
        return Entry.from_fields({key.decode(): value.decode() for key, value
                                  in (fields or {}).items()})
    except (ValueError, UnicodeDecodeError):
        return None


@contextmanager
def _one_at_a_time(home: Home, wait: bool) -> Iterator[bool]:
    """Hold HOME/run/cluster-intake.lock: True once held, False when another process holds
    it and `wait` is False."""
    fd = run_files.try_lock(run_files.run_dir(home) / "cluster-intake.lock", wait)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)
