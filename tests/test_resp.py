"""torchsm.mirror.redis_wire, the mirror's wire client, against a real server."""

from __future__ import annotations

import pytest

from torchsm.mirror import redis_wire
from torchsm.mirror.redis_wire import Endpoint, parse_url


@pytest.mark.parametrize("url, endpoint", [
    ("redis://127.0.0.1:18000/0", Endpoint("127.0.0.1", 18000)),
    ("redis://localhost", Endpoint("localhost", 6379)),
    ("redis://:pw@h:1/3", Endpoint("h", 1, db=3, password="pw")),
    ("redis://user:p%40ss@h:1", Endpoint("h", 1, username="user", password="p@ss")),
    ("rediss://h:6380/2", Endpoint("h", 6380, db=2, tls=True)),
    ("redis://[::1]:7000/0", Endpoint("::1", 7000)),
    ("unix:///run/redis.sock?db=4", Endpoint(unix_path="/run/redis.sock", db=4)),
])
def test_parse_url(url, endpoint):
    assert parse_url(url) == endpoint


@pytest.mark.parametrize("url", ["http://h", "redis://", "redis://h:1/x", "unix://relative"])
def test_parse_url_refuses(url):
    with pytest.raises(redis_wire.BadUrl):
        parse_url(url)


@pytest.mark.parametrize("url, masked", [
    ("redis://:secret@h:1/0", "redis://:****@h:1/0"),
    ("redis://user:secret@h:1/0", "redis://user:****@h:1/0"),
    ("redis://h:1/0", "redis://h:1/0"),
    ("off", "off"),
])
def test_mask_url(url, masked):
    assert redis_wire.mask_url(url) == masked


def test_replies_of_every_kind(redis_db):
    conn = redis_wire.Connection.open(parse_url(redis_db.url), 1.0)
    try:
        assert conn.call("PING") == "PONG"
        assert conn.call("SET", "k", "v\r\nwith bytes \xe9") == "OK"
        assert conn.call("GET", "k") == "v\r\nwith bytes \xe9".encode()
        assert conn.call("GET", "missing") is None
        assert conn.call("RPUSH", "l", 1, 2) == 2
        assert conn.call("LRANGE", "l", 0, -1) == [b"1", b"2"]
        replies = conn.call_many([("INCR", "n"), ("INCR", "l"), ("INCR", "n")])
        assert replies[0] == 1 and isinstance(replies[1], redis_wire.ReplyError) and replies[2] == 2
        with pytest.raises(redis_wire.ReplyError, match="WRONGTYPE"):
            conn.call("GET", "l")
    finally:
        conn.close()


def test_login_and_database_from_the_url(start_redis):
    server = start_redis(password="s3cret")
    good = redis_wire.Connection.open(parse_url(f"redis://:s3cret@127.0.0.1:{server.port}/5"), 1.0)
    good.call("SET", "where", "db5")
    good.close()
    import redis

    assert server.client().get("where") is None
    assert redis.Redis(port=server.port, password="s3cret", db=5).get("where") == b"db5"
    with pytest.raises(redis_wire.Unreachable, match="login refused"):
        redis_wire.Connection.open(parse_url(f"redis://:wrong@127.0.0.1:{server.port}/0"), 1.0)


def test_unreachable_kinds(refused_url, silent_url, dropping_url):
    with pytest.raises(redis_wire.Unreachable, match="connection refused"):
        redis_wire.Connection.open(parse_url(refused_url), 0.25)
    with pytest.raises(redis_wire.Unreachable, match="timed out"):
        redis_wire.Connection.open(parse_url(dropping_url), 0.25)
    silent = redis_wire.Connection.open(parse_url(silent_url), 0.25)  # the kernel accepted
    with pytest.raises(redis_wire.Unreachable, match="timed out"):
        silent.call("PING")
