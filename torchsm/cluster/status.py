"""`torchsm cluster status`: the hosts with their last heartbeat, each work stream's
length, lag and pending entries (XINFO GROUPS, the XPENDING summary), the dead letters,
each shared account's merged windows and requests in flight per host, and each host's
intake of shared memories and messages (its lag and pending entries).
One read of the server; nothing written."""

from __future__ import annotations

from torchsm.clock import format_time
from torchsm.cluster.accounts import accounts_status
from torchsm.cluster.hosts import Hosts, is_alive
from torchsm.cluster.intake import GROUP_PREFIX
from torchsm.cluster.server import Server, connect
from torchsm.cluster.settings import cluster_settings, server_url
from torchsm.cluster.work import DEAD_STREAM, GROUP, STREAMS, TIER_OF
from torchsm.config import Config
from torchsm.mirror.streams import MESSAGES_STREAM

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cluster_status(config: Config) -> dict[str, Any]:
    settings = cluster_settings(config)
    with connect(server_url(config)) as server:
        now, up_since = server.clock()
        beats = Hosts(server, settings.lease_s).last_beats()
        streams = _streams(server)
        with server.answers():
            dead_letters = server.client.xlen(DEAD_STREAM)
        shared = accounts_status(server, now)
        intake = intake_rows(server)
    return {"server": server.url, "host": settings.host, "server_time": format_time(now),
            "lease_s": settings.lease_s, "hosts": host_rows(beats, now, settings.lease_s, up_since),
            "streams": streams, "dead_letters": dead_letters, "accounts": shared,
            "intake": intake}


def host_rows(beats: dict[str, float], now: float, lease_s: float,
              up_since: float | None = None) -> list[dict[str, Any]]:
    """Each host heard of: its last beat, how long ago (server time), and alive or dead
    as reclaim sees it (a restarted server gives every host a lease to beat again)."""
    return [{"host": host, "last_beat": format_time(beat), "age_s": round(now - beat, 3),
             "alive": is_alive(beat, now, lease_s, up_since)}
            for host, beat in sorted(beats.items())]


def intake_rows(server: Server) -> list[dict[str, Any]]:
    """Each host's intake of the coordination stream (its group, torchsm.cluster.intake):
    entries not read yet (lag; None when the server cannot tell) and read but not taken
    in yet (pending). No stream yet: no row."""
    pipe = server.client.pipeline(transaction=False)
    pipe.xinfo_groups(MESSAGES_STREAM)
    with server.answers():
        [groups] = pipe.execute(raise_on_error=False)
    if not isinstance(groups, list):
        return []
    return sorted(({"host": g["name"].decode()[len(GROUP_PREFIX):], "lag": g.get("lag"),
                    "pending": g.get("pending", 0)} for g in groups
                   if g["name"].decode().startswith(GROUP_PREFIX)), key=lambda r: r["host"])


def _streams(server: Server) -> list[dict[str, Any]]:
    """A missing stream (nothing added yet, or a server that lost it) reads as empty."""
    pipe = server.client.pipeline(transaction=False)
    for stream in STREAMS:
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
        pipe.xpending(stream, GROUP)
    with server.answers():
        replies = pipe.execute(raise_on_error=False)
    return [_stream_row(stream, *replies[3 * i:3 * i + 3]) for i, stream in enumerate(STREAMS)]


def _stream_row(stream: str, length: int, groups: Any, pending: Any) -> dict[str, Any]:
    group = next((g for g in groups if g["name"].decode() == GROUP), {}) \
        if isinstance(groups, list) else {}
    consumers = pending.get("consumers", []) if isinstance(pending, dict) else []
    return {"stream": stream, "priority": TIER_OF[stream].value, "length": length,
            "lag": group.get("lag") if group else 0,  # None: the server cannot tell
            "pending": group.get("pending", 0),
            "consumers": {c["name"].decode(): c["pending"] for c in consumers}}
