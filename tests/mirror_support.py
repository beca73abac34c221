"""Helpers shared by the mirror's tests: entries, configs, reading a stream back."""

from __future__ import annotations

import sqlite3

from torchsm.config import Config, Home, MirrorConfig
from torchsm.mirror.streams import Entry

NOW = 1_800_000_000.0


def entry(i: int, nova: str = "torch", status: str | None = None, **data) -> Entry:
    if status is not None:
        data["status"] = status
    return Entry.new("test", nova, {"i": i, **data}, NOW + i, event_id=f"test-{nova}-{i}")


def config_for(url: str, **mirror) -> Config:
    return Config(redis_url=url, mirror=MirrorConfig(**mirror))


def write_mirror_config(home: Home, url: str, **mirror) -> None:
    lines = [f'redis_url = "{url}"', "[mirror]"]
    lines += [f"{key} = {value}" for key, value in mirror.items()]
    home.config_path.write_text("\n".join(lines) + "\n")


def stream_entries(server, stream: str) -> list[Entry]:
    """Everything in `stream`, oldest first."""
    return [Entry.from_fields({k.decode(): v.decode() for k, v in fields.items()})
            for _, fields in server.client().xrange(stream)]


def history_event_ids(home: Home) -> dict[str, list[str]]:
    """Each Nova's transition event ids in commit order."""
    conn = sqlite3.connect(home.db_path)
    try:
        rows = conn.execute("SELECT n.name, h.event_id FROM history h JOIN novas n"
                            " ON n.id = h.nova_id ORDER BY h.id").fetchall()
    finally:
        conn.close()
    ids: dict[str, list[str]] = {}
    for name, event_id in rows:
        ids.setdefault(name, []).append(event_id)
    return ids


def per_nova(entries: list[Entry], type: str = "transition") -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for e in entries:
        if e.type == type:
            ids.setdefault(e.nova, []).append(e.event_id)
    return ids
