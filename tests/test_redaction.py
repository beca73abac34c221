"""The mirror's password never shows (issue 14, finding 12): not with an upper-case scheme
(`REDIS://`), not when the password holds `@`, in `mirror status` (text and --json), in
warnings or in errors; and the URL is read the same way to connect."""

from __future__ import annotations

import pytest

from torchsm.mirror import redis_wire
from torchsm.mirror.redis_wire import Endpoint, mask_url, parse_url

SECRET = "hunter2@x9q"  # both halves are checked, around the `@`


def urls(host_port: str) -> list[str]:
    return [
        f"redis://:{SECRET}@{host_port}/0",
        f"redis://user:{SECRET}@{host_port}/0",
        f"REDIS://user:{SECRET}@{host_port}/0",
        f"Redis://:{SECRET}@{host_port}",
        f"rediss://user:{SECRET}@{host_port}",
        f"REDISS://:{SECRET}@{host_port}/1",
        f"redis://:{SECRET}:more@{host_port}/0",
        f"redis://:pa/{SECRET}@{host_port}/0",
    ]


def assert_hidden(text: str) -> None:
    assert "hunter2" not in text and "x9q" not in text, text


@pytest.mark.parametrize("url", urls("h:1"))
def test_mask_url_hides_every_password(url):
    masked = mask_url(url)
    assert_hidden(masked)
    assert masked.endswith("****@h:1/0") or masked.endswith("****@h:1") \
        or masked.endswith("****@h:1/1")


@pytest.mark.parametrize("url, masked", [
    ("REDIS://user:pw@h:1/0", "REDIS://user:****@h:1/0"),
    ("redis://:p@ss@host:6379/0", "redis://:****@host:6379/0"),
    ("rediss://user:pw@host", "rediss://user:****@host"),
    ("unix://:pw@/run/redis.sock?db=1", "unix://:****@/run/redis.sock?db=1"),
    ("user:pw@host:6379", "user:****@host:6379"),  # not even a URL: still masked
    ("redis://user@h:1/0", "redis://user@h:1/0"),  # a user name is no secret
    ("unix:///run/user@1/redis.sock", "unix:///run/user@1/redis.sock"),
])
def test_mask_url_forms(url, masked):
    assert mask_url(url) == masked


@pytest.mark.parametrize("url, endpoint", [
    ("REDIS://user:pw@h:1/3", Endpoint("h", 1, db=3, username="user", password="pw")),
    ("redis://:p@ss@host:6379/0", Endpoint("host", 6379, password="p@ss")),
    ("rediss://user:pw@host", Endpoint("host", 6379, username="user", password="pw", tls=True)),
    ("REDISS://:a:b@c@host:7/2", Endpoint("host", 7, db=2, password="a:b@c", tls=True)),
    ("redis://:pa/ss@host:1/0", Endpoint("host", 1, password="pa/ss")),
    ("UNIX://:pw@/run/redis.sock?db=4", Endpoint(unix_path="/run/redis.sock", db=4,
                                                 password="pw")),
    ("unix:///run/user@1/redis.sock", Endpoint(unix_path="/run/user@1/redis.sock")),
])
def test_the_url_is_parsed_the_same_way(url, endpoint):
    assert parse_url(url) == endpoint


@pytest.mark.parametrize("url", ["REDIS://:hunter2@x9q@h:1/x", "HTTP://:hunter2@x9q@h",
                                 "redis://:hunter2@x9q@"])
def test_a_bad_url_error_hides_the_password(url):
    with pytest.raises(redis_wire.BadUrl) as caught:
        parse_url(url)
    assert_hidden(str(caught.value))


def test_a_password_with_an_at_sign_logs_in(start_redis):
    server = start_redis(password=SECRET)
    conn = redis_wire.Connection.open(parse_url(f"REDIS://:{SECRET}@127.0.0.1:{server.port}/2"), 1.0)
    try:
        assert conn.call("PING") in (b"PONG", "PONG")
    finally:
        conn.close()


def test_mirror_status_never_shows_the_password(cli, refused_url):
    host_port = refused_url.split("://", 1)[1].split("/", 1)[0]
    cli("nova", "add", "torch")
    for url in urls(host_port):
        # a publish while the server is down remembers the outage (and its URL)
        cli("transition", "torch", "cool", "--for", "5", TORCHSM_REDIS_URL=url)
        for args in (("mirror", "status"), ("mirror", "status", "--json")):
            result = cli(*args, TORCHSM_REDIS_URL=url)
            assert "****@" in result.out
            assert "no (" in result.out or '"reachable": false' in result.out, result.out
            assert_hidden(result.out + result.err)
        flush = cli("mirror", "flush", check=False, TORCHSM_REDIS_URL=url)
        assert flush.code == 1 and "****@" in flush.err
        assert_hidden(flush.out + flush.err)
        assert_hidden((cli.home / "queue" / "outage.json").read_text())


def test_a_bad_url_in_the_environment_hides_the_password(cli):
    cli("nova", "add", "torch")
    for url in ("REDIS://:hunter2@x9q@h:1/x", "redis://:hunter2@x9q@h:port"):
        result = cli("mirror", "status", check=False, TORCHSM_REDIS_URL=url)
        assert result.code == 1 and "redis_url" in result.err
        assert_hidden(result.out + result.err)
