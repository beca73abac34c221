"""The cluster's shared work: Redis Streams with one consumer group, read by every host.

One stream per tier (`torch.cluster.work.TIER`, beside the mirror's `torch.continuous.ops`)
and one group, `torch.cluster.workers`, on each; a Nova reads as consumer `HOST:NOVA`.

- add: an item carries an id; a script remembers the id (for the mirror's dedup TTL) and
  adds nothing for a known one, so a producer that retries never adds twice.
- claim: the most urgent tier first; never blocks (XREADGROUP without BLOCK, in a script).
- waiting: whether a claim would find an item, read only (a supervisor looks before it
  asks admission, and claims only once a session may start).
- done: XACK takes no consumer, so done is fenced: it counts only while the entry is still
  pending for that very consumer (XPENDING on the exact id names the owner), and leaves a
  done marker, so a late done from a host that lost the item, or a second done, counts
  nothing more.
- reclaim: a claim lives as long as its host beats (torchsm.cluster.hosts), however long
  the session: only a dead host's entries are taken over, into a pool consumer that the
  next claim of their tier takes them from. Attempts are the entry's delivery count; an
  entry delivered `max_attempts` times whose owner died goes to the dead-letter stream.
- fail / release: fenced like done; a failed attempt goes back to the pool (counted), or
  to the dead-letter stream after `max_attempts`; a release (no session ran) goes back
  with its delivery given back.

The scripts are in torchsm.cluster.work_scripts.
"""

from __future__ import annotations

import uuid

from torchsm.cluster import work_scripts
from torchsm.cluster.hosts import HOSTS_KEY
from torchsm.cluster.server import Server
from torchsm.cluster.settings import ClusterSettings
from torchsm.config import is_host_name
from torchsm.errors import InvalidClusterItem, InvalidHostName
from torchsm.names import check_name
from torchsm.records import record
from torchsm.tiers import Tier, parse_tier
from torchsm.work.work_queue import check_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GROUP = "torch.cluster.workers"
DEAD_STREAM = "torch.cluster.work.dead"
POOL = "torch.cluster.pool"  # holds taken-over entries; no `:`, so no host's consumer
ITEM_KEY = "torch.cluster.item.{}"
DONE_KEY = "torch.cluster.done.{}"

# what `done` says
DONE, ALREADY_DONE, LOST = "done", "already done", "lost"
_DONE_ANSWERS = {1: DONE, 0: ALREADY_DONE, -1: LOST}
# what `fail` and `release` say (or LOST)
RETRY, DEAD = "back for another attempt", "dead"
_FAIL_ANSWERS = {1: RETRY, 2: DEAD, -1: LOST}


def stream_of(tier: Tier | str) -> str:
    return f"torch.cluster.work.{Tier(tier).value}"


STREAMS = [stream_of(tier) for tier in Tier]  # most urgent first
TIER_OF = {stream_of(tier): tier for tier in Tier}


def streams_above(tier: Tier | str | None) -> list[str]:
    """The streams of the tiers more urgent than `tier` (all of them for None)."""
    return STREAMS if tier is None else STREAMS[:Tier(tier).rank]


def consumer(host: str, nova: str) -> str:
    """HOST:NOVA, both checked: a `:` in either would make reclaim read another host."""
    if not is_host_name(host):
        raise InvalidHostName(host)
    return f"{host}:{check_name(nova)}"


@record
class Added:
    item_id: str
    priority: Tier
    stream: str
    entry_id: str
    added: bool  # False: the id was known, nothing was added

    def as_json(self) -> dict[str, Any]:
        return {"id": self.item_id, "cluster": True, "priority": self.priority.value,
                "stream": self.stream, "entry_id": self.entry_id, "added": self.added,
                "kept": False}


@record
class ClusterItem:
    item_id: str
    text: str
    priority: Tier
    stream: str
    entry_id: str
    deliveries: int  # this claim is attempt number `deliveries`
    owner: str  # the consumer HOST:NOVA that holds it
    added_at: float  # the server's time
    added_by: str  # the host that added it


@record
class Reclaimed:
    pooled: list[str]  # item ids taken over from dead hosts, claimable again
    dead: list[str]  # item ids moved to the dead-letter stream


class ClusterWork:
    def __init__(self, server: Server, settings: ClusterSettings):
        self.server = server
        self.settings = settings
        self._add = server.script(work_scripts.ADD)
        self._claim = server.script(work_scripts.CLAIM)
        self._waiting = server.script(work_scripts.WAITING)
        self._done = server.script(work_scripts.DONE)
        self._reclaim = server.script(work_scripts.RECLAIM)
        self._fail = server.script(work_scripts.FAIL)

    def add(self, text: str, priority: Tier | str = Tier.MEDIUM,
            item_id: str | None = None) -> Added:
        """Put an item on its tier's stream, once per `item_id` (a fresh one when None)."""
        text = check_text(text)
        tier = priority if isinstance(priority, Tier) else parse_tier(priority)
        item_id = new_item_id() if item_id is None else check_item_id(item_id)
        fields = {"item_id": item_id, "text": text, "priority": tier.value,
                  "added_by": self.settings.host}
        added, stream, entry_id = self.server.run(
            self._add, [ITEM_KEY.format(item_id), stream_of(tier)],
            [GROUP, self.settings.ttl_s, *_flat(fields)])
        stream = stream.decode()
        return Added(item_id, TIER_OF[stream], stream, entry_id.decode(), added == 1)

    def claim(self, host: str, nova: str,
              more_urgent_than: Tier | str | None = None) -> ClusterItem | None:
        """The item this Nova holds, else the most urgent one claimable; None when there is
        none. `more_urgent_than`: only tiers more urgent than this one are looked at (a
        local item of that tier wins a tie)."""
        owner = consumer(host, nova)
        streams = streams_above(more_urgent_than)
        if not streams:
            return None
        found = self.server.run(self._claim, streams, [GROUP, owner, POOL])
        return _item(found, owner) if found else None

    def waiting(self, host: str, nova: str, more_urgent_than: Tier | str | None = None) -> bool:
        """Whether `claim` would find an item now, taking nothing: one HOST:NOVA holds, one
        given back to the pool, or one not delivered yet (another host may still be first)."""
        streams = streams_above(more_urgent_than)
        if not streams:
            return False
        return self.server.run(self._waiting, streams, [GROUP, consumer(host, nova), POOL]) == 1

    def done(self, item: ClusterItem, host: str, nova: str) -> str:
        """DONE when HOST:NOVA holds the item now; ALREADY_DONE when it finished it before;
        LOST when it does not hold it (never did, or lost it to a takeover)."""
        answer = self.server.run(
            self._done, [item.stream, DONE_KEY.format(item.item_id)],
            [GROUP, item.entry_id, consumer(host, nova), self.settings.ttl_s])
        return _DONE_ANSWERS[answer]

    def fail(self, item: ClusterItem, host: str, nova: str, error: str = "") -> str:
        """A failed attempt of HOST:NOVA's: RETRY (back to the pool; the attempt counted
        by the delivery count) or, after `max_attempts` deliveries, DEAD (to the
        dead-letter stream, with `error`); LOST when HOST:NOVA does not hold the item."""
        return self._give_back(item, consumer(host, nova), True, error)

    def release(self, item: ClusterItem, host: str, nova: str) -> str:
        """Give back an item no session ran (admission refused, a stop): RETRY with no
        attempt counted, or LOST when HOST:NOVA does not hold it."""
        return self._give_back(item, consumer(host, nova), False, "")

    def _give_back(self, item: ClusterItem, owner: str, counted: bool, error: str) -> str:
        answer = self.server.run(
            self._fail, [item.stream, DEAD_STREAM],
            [GROUP, item.entry_id, owner, POOL, self.settings.max_attempts, int(counted),
             error])
        return _FAIL_ANSWERS[answer]

    def reclaim(self, now: float | None = None, up_since: float | None = None) -> Reclaimed:
        """Take over the entries of hosts dead at `now` (the server's time by default):
        back to the pool, or to the dead-letter stream after `max_attempts` deliveries.
        The server's start (`up_since`, read from it by default) counts as every host's
        beat: after a restore from an old snapshot each host has a lease to beat again
        (torchsm.cluster.hosts)."""
        if now is None or up_since is None:
            server_now, server_start = self.server.clock()
            now = server_now if now is None else now
            up_since = server_start if up_since is None else up_since
        pooled, dead = self.server.run(
            self._reclaim, [*STREAMS, HOSTS_KEY, DEAD_STREAM],
            [GROUP, POOL, repr(now), self.settings.lease_s, self.settings.max_attempts,
             repr(up_since)])
        return Reclaimed([i.decode() for i in pooled], [i.decode() for i in dead])


def new_item_id() -> str:
    return uuid.uuid4().hex


def check_item_id(item_id: str) -> str:
    """1 to 128 printable characters, no white space: it is part of a key and of lines."""
    if not (0 < len(item_id) <= 128 and item_id.isprintable()
            and not any(c.isspace() for c in item_id)):
        raise InvalidClusterItem(item_id)
    return item_id


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


def _item(found: list, owner: str) -> ClusterItem:
    stream, entry_id, values, deliveries = found
    fields = {values[i].decode(): values[i + 1].decode() for i in range(0, len(values), 2)}
    stream = stream.decode()
    return ClusterItem(fields["item_id"], fields["text"], TIER_OF[stream], stream,
                       entry_id.decode(), int(deliveries), owner, float(fields["added_at"]),
                       fields["added_by"])
