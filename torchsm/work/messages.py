"""Messages between Novas: recorded in SQLite, then mirrored to `nova.coordination.messages`.

A Nova reads the same messages whether the server is up or not. When it is up, the inbox
is read from the stream (where Novas of other homes sharing the server can write too) and
SQLite fills in what the stream no longer holds (trimmed by MAXLEN, or lost when a server
without persistence restarted); when it is down, SQLite alone answers. Either way a
message is one object, identified by its event_id.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from torchsm.config import Config, Home
from torchsm.errors import NovaNowhere, TorchsmError
from torchsm.mirror import outbox, streams
from torchsm.names import check_name
from torchsm.storage import store

BROADCAST = "all"
MESSAGE_TYPE = "message"
_PAGE = 500

# whether a name that is no Nova of this home is one of another host's (a cluster's)
Elsewhere = Callable[[str], bool]

# told how many entries of the stream were skipped as malformed (the CLI warns)
OnMalformed = Callable[[int], None]


def _ignore(count: int) -> None:
    pass


def send(home: Home, config: Config, sender: str, recipient: str, text: str,
         now: float | None = None, elsewhere: Elsewhere | None = None) -> dict[str, Any]:
    """Store a message from Nova `sender` to Nova `recipient` (or `all`) and mirror it.
    A recipient that is no Nova of this home may be one of another host when `elsewhere`
    (a cluster's host) says so; the sender is always of this home."""
    check_name(sender)
    if recipient != BROADCAST:
        check_name(recipient)
    if not text.strip():
        raise TorchsmError("a message needs some text")
    now = time.time() if now is None else now
    event_id = streams.new_event_id(now)
    def write(conn) -> store.MessageRow:
        row = _save(conn, event_id, sender, recipient, text, now, remote)
        outbox.put(conn, config, streams.MESSAGES_STREAM, _entry(row, config))
        return row

    with store.open_store(home, config.db.lock_timeout_s) as db:
        remote = _is_remote(db, recipient, elsewhere)
        row = db.write(write)
    delivered = outbox.deliver(home, config)
    return {**_row_json(row), "mirror": outbox.where(config, delivered, event_id)}


def _is_remote(db: store.Store, recipient: str, elsewhere: Elsewhere | None) -> bool:
    """Whether `recipient` is a Nova of another host (NovaNowhere when it is on none)."""
    if recipient == BROADCAST or elsewhere is None:
        return False
    if db.read(lambda conn: store.load_nova(conn, recipient)) is not None:
        return False
    if elsewhere(recipient):
        return True
    raise NovaNowhere(recipient)


def _save(conn, event_id: str, sender: str, recipient: str, text: str, now: float,
          remote: bool = False):
    store.nova_named(conn, sender)
    if recipient != BROADCAST and not remote:
        store.nova_named(conn, recipient)
    return store.save_message(conn, event_id=event_id, sender=sender, recipient=recipient,
                              text=text, at=now)


def _entry(row: store.MessageRow, config: Config) -> streams.Entry:
    return streams.Entry.new(MESSAGE_TYPE, row.sender,
                            {"from": row.sender, "to": row.recipient, "text": row.text,
                             **streams.origin(config)},
                            row.at, row.event_id)


def _row_json(row: store.MessageRow) -> dict[str, Any]:
    return {"id": row.event_id, "from": row.sender, "to": row.recipient, "text": row.text,
            "at": streams.iso_time(row.at)}


def _entry_json(entry: streams.Entry) -> dict[str, Any] | None:
    """A `message` entry as a message; None when it is not a whole one (a sender, a
    recipient and a text that are strings, a time that is one)."""
    message = {"id": entry.event_id, "from": entry.data.get("from", entry.nova),
               "to": entry.data.get("to"), "text": entry.data.get("text")}
    if not all(isinstance(value, str) for value in message.values()):
        return None
    try:
        return {**message, "at": streams.iso_time(streams.epoch(entry.at))}
    except (ValueError, OverflowError, OSError):
        return None


def is_for(message: dict[str, Any], name: str) -> bool:
    """Addressed to `name`, or a broadcast from another Nova."""
    return message["to"] == name or (message["to"] == BROADCAST and message["from"] != name)


def inbox(home: Home, config: Config, name: str, limit: int = 20,
          on_malformed: OnMalformed = _ignore) -> list[dict[str, Any]]:
    """The latest `limit` messages for Nova `name`, oldest first. Entries of the stream
    that are not whole messages are skipped, and counted to `on_malformed`."""
    local = _local_inbox(home, config, name, limit)
    with streams.open_mirror(home, config) as out:
        streamed = _stream_inbox(out, name, limit, on_malformed)
    return _latest({**{m["id"]: m for m in local},
                    **{m["id"]: m for m in streamed or []}}.values(), limit)


def _local_inbox(home: Home, config: Config, name: str, limit: int) -> list[dict[str, Any]]:
    check_name(name)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        rows = db.read(lambda conn: _checked_inbox(conn, name, limit))
    return [_row_json(row) for row in rows]


def _checked_inbox(conn, name: str, limit: int) -> list[store.MessageRow]:
    store.nova_named(conn, name)
    return store.load_inbox(conn, name, limit)


def _stream_inbox(out: streams.Mirror, name: str, limit: int, on_malformed: OnMalformed
                  ) -> list[dict[str, Any]] | None:
    """Up to `limit` of the newest messages for `name` in the stream; None when down."""
    found: list[dict[str, Any]] = []
    before = None
    while len(found) < limit:
        page = out.latest(streams.MESSAGES_STREAM, _PAGE, before)
        if page is None:
            return None
        found += [m for m in _messages(page, on_malformed) if is_for(m, name)]
        if len(page) < _PAGE:
            break
        before = page[-1][0]
    return found[:limit]


def _messages(entries: list[streams.StreamEntry], on_malformed: OnMalformed
              ) -> list[dict[str, Any]]:
    """The messages among `entries` (other types are not messages); the entries that are
    malformed, or messages that are not whole, are counted to `on_malformed`."""
    messages, bad = [], 0
    for _, entry in entries:
        if entry is not None and entry.type != MESSAGE_TYPE:
            continue  # another kind of entry (a transition's, a memory's)
        message = None if entry is None else _entry_json(entry)
        if message is None:
            bad += 1
        else:
            messages.append(message)
    if bad:
        on_malformed(bad)
    return messages


def _latest(messages, limit: int) -> list[dict[str, Any]]:
    return _in_order(messages)[-limit:]


def _in_order(messages) -> list[dict[str, Any]]:
    return sorted(messages, key=lambda m: (m["at"], m["id"]))


def follow(home: Home, config: Config, name: str, limit: int = 20, poll_s: float = 1.0,
           on_malformed: OnMalformed = _ignore) -> Iterator[dict[str, Any]]:
    """Yield the latest `limit` messages for `name`, then new ones as they arrive: from
    the stream while the server is up (blocking reads), and from SQLite always, so
    nothing is missed while it is down. Runs until the caller stops iterating."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        # Where "new" starts is taken before the inbox is read: a message sent in between
        # shows up twice at most, and `seen` drops the second.
        last_row = db.read(store.last_message_id)
        out = streams.open_mirror(home, config)
        stream_id = _newest_id(out)
        seen: set[str] = set()
        try:
            for message in inbox(home, config, name, limit, on_malformed):
                seen.add(message["id"])
                yield message
            while True:
                arrived, stream_id = _from_stream(out, name, stream_id, poll_s,
                                                  on_malformed)
                if stream_id is None:  # no server: poll SQLite, try the server again later
                    out.close()
                    time.sleep(poll_s)
                    out = streams.open_mirror(home, config)
                    stream_id = _newest_id(out)
                rows = db.read(lambda conn: store.load_inbox_after(conn, name, last_row))
                last_row = rows[-1].id if rows else last_row
                for message in _in_order(arrived + [_row_json(r) for r in rows]):
                    if message["id"] not in seen:
                        seen.add(message["id"])
                        yield message
        finally:
            out.close()


def _newest_id(out: streams.Mirror) -> str | None:
    newest = out.latest(streams.MESSAGES_STREAM, 1)
    if newest is None:
        return None
    return newest[0][0] if newest else "0"


def _from_stream(out: streams.Mirror, name: str, stream_id: str | None, block_s: float,
                 on_malformed: OnMalformed) -> tuple[list[dict[str, Any]], str | None]:
    if stream_id is None:
        return [], None
    entries = out.after(streams.MESSAGES_STREAM, stream_id, block_s)
    if entries is None:
        return [], None
    newest = entries[-1][0] if entries else stream_id
    return [m for m in _messages(entries, on_malformed) if is_for(m, name)], newest
