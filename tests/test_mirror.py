"""The Mirror contract, run against every implementation, on a real redis-server."""

from __future__ import annotations

import time

import pytest

from torchsm.config import Home
from torchsm.errors import MirrorOff, MirrorUnavailable
from torchsm.mirror import streams
from torchsm.mirror.shared_state import MirrorMemory
from torchsm.mirror.streams import (DISCARDED, IN_QUEUE, IN_STREAM, MESSAGES_STREAM, OPS_STREAM,
                            FileQueueMirror, NullMirror, RedisMirror, open_mirror)

from mirror_support import NOW, config_for, entry, stream_entries


def redis_mirror(home: Home, url: str, **settings) -> RedisMirror:
    mirror_ = open_mirror(home, config_for(url, **settings), use_outage_memory=False)
    assert isinstance(mirror_, RedisMirror)
    return mirror_


class Subject:
    """A mirror under test and how to see what it delivered."""

    destination = IN_STREAM
    readable = True

    def __init__(self, home: Home, server):
        self.home, self.server = home, server
        self.mirror = self.build()

    def build(self):
        return redis_mirror(self.home, self.server.url)

    def deliver(self) -> None:
        """Whatever the implementation still holds, sent on to the server."""

    def delivered(self, stream: str) -> list[streams.Entry]:
        self.deliver()
        return stream_entries(self.server, stream)

    def status(self, nova: str) -> bytes | None:
        self.deliver()
        return self.server.client().get(f"nova.status.{nova}")


class QueueSubject(Subject):
    destination = IN_QUEUE
    readable = False

    def build(self):
        return FileQueueMirror(self.home.queue_dir)

    def deliver(self) -> None:
        with redis_mirror(self.home, self.server.url) as server_side:
            server_side.flush(NOW)


class DownSubject(QueueSubject):
    """RedisMirror while its server refuses connections: the file queue takes over."""

    def build(self):
        return redis_mirror(self.home, "redis://127.0.0.1:1/0")


class NullSubject(Subject):
    destination = DISCARDED
    readable = False

    def build(self):
        return NullMirror()


class MirrorContract:
    subject_class: type[Subject]

    @pytest.fixture
    def subject(self, home, redis_db):
        subject = self.subject_class(home, redis_db)
        yield subject
        subject.mirror.close()

    def expected(self, entries):
        return [] if self.subject_class.destination == DISCARDED else entries

    def test_publish_says_where_the_entry_went(self, subject):
        assert subject.mirror.publish(OPS_STREAM, entry(1), NOW) == subject.destination

    def test_entries_land_in_publish_order_per_stream(self, subject):
        ops = [entry(i, nova=("torch", "echo")[i % 2]) for i in range(6)]
        talk = [entry(10 + i) for i in range(3)]
        for i, e in enumerate(ops):
            subject.mirror.publish(OPS_STREAM, e, NOW)
            if i < len(talk):
                subject.mirror.publish(MESSAGES_STREAM, talk[i], NOW)
        assert subject.delivered(OPS_STREAM) == self.expected(ops)
        assert subject.delivered(MESSAGES_STREAM) == self.expected(talk)

    def test_an_event_id_lands_at_most_once(self, subject):
        once = entry(1)
        for _ in range(3):
            subject.mirror.publish(OPS_STREAM, once, NOW)
        subject.mirror.publish(OPS_STREAM, entry(2), NOW)
        assert subject.delivered(OPS_STREAM) == self.expected([once, entry(2)])

    def test_ordered_is_reentrant(self, subject):
        with subject.mirror.ordered(), subject.mirror.ordered():
            subject.mirror.publish(OPS_STREAM, entry(1), NOW)
        assert subject.delivered(OPS_STREAM) == self.expected([entry(1)])

    def test_status_key_follows_the_entries(self, subject):
        subject.mirror.publish(OPS_STREAM, entry(1, status="COOLING"), NOW)
        subject.mirror.publish(OPS_STREAM, entry(2, status="WORKING"), NOW)
        subject.mirror.publish(OPS_STREAM, entry(3), NOW)  # no status: leaves it alone
        expected = None if subject.destination == DISCARDED else b"WORKING"
        assert subject.status("torch") == expected

    def test_queued_counts_what_waits(self, subject):
        for i in range(3):
            subject.mirror.publish(MESSAGES_STREAM, entry(i), NOW)
        waiting = 3 if subject.destination == IN_QUEUE else 0
        assert subject.mirror.queued() == {OPS_STREAM: 0, MESSAGES_STREAM: waiting}

    def test_reads_back_or_says_it_cannot(self, subject):
        published = [entry(i) for i in range(3)]
        for e in published:
            subject.mirror.publish(OPS_STREAM, e, NOW)
        newest = subject.mirror.latest(OPS_STREAM, 2)
        after = subject.mirror.after(OPS_STREAM, "0")
        if not subject.readable:
            assert newest is None and after is None
            return
        assert [e for _, e in newest] == published[:0:-1]
        assert [e for _, e in after] == published
        assert [e for _, e in subject.mirror.latest(OPS_STREAM, 5, newest[-1][0])] == \
            published[:1]

    def test_publish_is_prompt(self, subject):
        start = time.monotonic()
        for i in range(20):
            subject.mirror.publish(OPS_STREAM, entry(i), NOW)
        assert time.monotonic() - start < 5.0  # no timeout paid per publish


class TestRedisMirror(MirrorContract):
    subject_class = Subject


class TestFileQueueMirror(MirrorContract):
    subject_class = QueueSubject


class TestRedisMirrorWhileDown(MirrorContract):
    subject_class = DownSubject


class TestNullMirror(MirrorContract):
    subject_class = NullSubject


# -- choosing, flushing, remembering --------------------------------------------------

def test_open_mirror_chooses(home, redis_db, refused_url):
    assert isinstance(open_mirror(home, config_for("off")), NullMirror)
    assert isinstance(open_mirror(home, config_for(redis_db.url)), RedisMirror)
    MirrorMemory(home.queue_dir, refused_url).record_outage(NOW, "connection refused")
    remembered = config_for(refused_url, outage_memory_s=30)
    assert isinstance(open_mirror(home, remembered, now=NOW + 29), FileQueueMirror)
    assert isinstance(open_mirror(home, remembered, now=NOW + 31), RedisMirror)
    assert isinstance(open_mirror(home, remembered, now=NOW + 1, use_outage_memory=False),
                      RedisMirror)
    # an outage of another URL says nothing about this one
    assert isinstance(open_mirror(home, config_for(redis_db.url), now=NOW + 1), RedisMirror)


def test_flush_refuses_when_off_or_unreachable(home, refused_url):
    with pytest.raises(MirrorOff):
        NullMirror().flush()
    FileQueueMirror(home.queue_dir).publish(OPS_STREAM, entry(1))
    with pytest.raises(MirrorUnavailable, match="connection refused; 1 entry stays queued"):
        streams.flush(home, config_for(refused_url))


def test_an_outage_is_remembered_across_mirrors(home, refused_url):
    down = redis_mirror(home, refused_url, outage_memory_s=30)
    assert down.publish(OPS_STREAM, entry(1), NOW) == IN_QUEUE
    memory = MirrorMemory(home.queue_dir, refused_url)
    assert memory.last_outage()["error"] == "connection refused"
    assert memory.outage_remembered(NOW + 29, 30) and not memory.outage_remembered(NOW + 31, 30)


def test_server_back_replays_the_queue_before_new_entries(home, redis_db, refused_url):
    queued = [entry(i) for i in range(5)]
    with redis_mirror(home, refused_url) as down:
        for e in queued:
            down.publish(OPS_STREAM, e, NOW)
    with redis_mirror(home, redis_db.url) as back:
        assert back.publish(OPS_STREAM, entry(5), NOW) == IN_STREAM
    assert stream_entries(redis_db, OPS_STREAM) == queued + [entry(5)]
    assert FileQueueMirror(home.queue_dir).queued() == {OPS_STREAM: 0, MESSAGES_STREAM: 0}
    assert MirrorMemory(home.queue_dir, redis_db.url).last_success() == NOW


def test_streams_are_capped(home, redis_db):
    with redis_mirror(home, redis_db.url, maxlen=100) as capped:
        for i in range(1000):
            capped.publish(OPS_STREAM, entry(i), NOW)
    length = redis_db.client().xlen(OPS_STREAM)
    assert 100 <= length < 1000  # MAXLEN ~ trims whole nodes: at least 100 stay


def test_dedup_keys_expire(home, redis_db):
    with redis_mirror(home, redis_db.url, dedup_ttl_s=600) as server:
        server.publish(OPS_STREAM, entry(1), NOW)
    ttl = redis_db.client().ttl(f"dedup:{entry(1).event_id}")
    assert 590 < ttl <= 600


def test_status_with_ttl_keeps_its_expiry_on_replay(home, redis_db):
    fresh = streams.Entry.new("test", "torch", {"status": "COMPACTING", "status_ttl_s": 120},
                             NOW)
    stale = streams.Entry.new("test", "echo", {"status": "COMPACTING", "status_ttl_s": 120},
                             NOW)
    with redis_mirror(home, redis_db.url) as server:
        server.publish(OPS_STREAM, fresh, NOW + 20)   # replayed 20 s late: 100 s left
        server.publish(OPS_STREAM, stale, NOW + 200)  # past its expiry: no status
    client = redis_db.client()
    assert client.get("nova.status.torch") == b"COMPACTING"
    assert 99_000 < client.pttl("nova.status.torch") <= 100_000
    assert client.get("nova.status.echo") is None


def test_an_empty_status_removes_the_key(home, redis_db):
    with redis_mirror(home, redis_db.url) as server:
        server.publish(OPS_STREAM, entry(1, status="WORKING"), NOW)
        server.publish(OPS_STREAM, entry(2, status=""), NOW)
    assert redis_db.client().get("nova.status.torch") is None


def test_a_refused_entry_stays_queued(home, redis_db):
    redis_db.client().set(OPS_STREAM, "not a stream")
    with redis_mirror(home, redis_db.url) as server:
        assert server.publish(OPS_STREAM, entry(1), NOW) == IN_QUEUE
    assert FileQueueMirror(home.queue_dir).queued()[OPS_STREAM] == 1
    redis_db.client().delete(OPS_STREAM)
    report = streams.flush(home, config_for(redis_db.url), NOW)
    assert report.published[OPS_STREAM] == 1


def test_nova_status_keys_follow_add_transition_remove(home, redis_db):
    from torchsm import novas

    cfg = config_for(redis_db.url)
    client = redis_db.client()
    novas.add(home, cfg, "torch")
    assert client.get("nova.status.torch") == b"WORKING"
    novas.transition(home, cfg, "torch", "compact")
    assert client.get("nova.status.torch") == b"COMPACTING"
    novas.remove(home, cfg, "torch")
    assert client.get("nova.status.torch") is None
    assert [e.type for e in stream_entries(redis_db, OPS_STREAM)] == [
        "nova.added", "transition", "nova.removed"]
