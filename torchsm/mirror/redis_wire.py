"""A minimal Redis client (RESP2 over one socket) for the mirror.

Why not redis-py: importing it costs ~105 ms, several times a whole `torchsm transition`
process, and the mirror publishes from that process (FIELD-NOTES "Start-up cost"). The
mirror needs little: connect under a deadline, AUTH/SELECT from the URL, send commands
(pipelined), read replies. Redis 7 and Dragonfly speak the same RESP2 for all of it.

Every failure to reach or hear the server is `Unreachable`; an error reply from a server
that answered is `ReplyError`. Nothing here retries: the caller decides what an outage means.
"""

from __future__ import annotations

from torchsm.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from typing import Any, Iterable, Sequence

# A pattern as text: `re` caches what it compiles, and a process whose mirror is off never
# compiles it. (Start-up time matters here; so the small types are NamedTuples, which are
# cheaper to define than dataclasses.)
_HOST_PORT = r"^(?P<host>\[[^\]]+\]|[^:/]*)(?::(?P<port>\d+))?(?:/(?P<db>\d*))?$"
_SCHEMES = ("redis", "rediss", "unix")


class Unreachable(Exception):
    """The server could not be reached, or did not answer in time."""


class ReplyError(Exception):
    """The server answered with an error reply (its text is the message)."""


class BadUrl(ValueError):
    """The mirror URL is not one this client understands."""


@record
class Endpoint:
    """Where a server is and how to log in, parsed from a redis://, rediss:// or unix:// URL."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_url(url: str) -> Endpoint:
    """`redis://[[user]:password@]host[:port][/db]`, `rediss://...` (TLS), or
    `unix://[[user]:password@]/path/to.sock[?db=N]`. The scheme's case does not matter;
    the password may hold `@`, `:` and `/` (split_url), or be %-quoted."""
    prefix, userinfo, location = split_url(url)
    scheme = prefix[:-3].lower()
    if scheme not in _SCHEMES:
        raise BadUrl(f"not a redis URL: {mask_url(url)!r}")
    user = password = None
    if userinfo is not None:
        name, colon, secret = userinfo.partition(":")
        user, password = _unquote(name) or None, _unquote(secret) if colon else None
    location, _, query_text = location.partition("?")
    query = dict(p.split("=", 1) for p in query_text.split("&") if "=" in p)
    if scheme == "unix":
        if not location.startswith("/"):
            raise BadUrl(f"a unix:// URL needs an absolute socket path: {mask_url(url)!r}")
        return Endpoint(unix_path=location, db=_db(query.get("db", "0"), url),
                        username=user, password=password)
    import re  # only to reach a server: the hot path with the mirror off never does

    where = re.match(_HOST_PORT, location)
    if not where or not where["host"]:
        raise BadUrl(f"not a redis URL (host:port/db expected): {mask_url(url)!r}")
    return Endpoint(host=where["host"].strip("[]"), port=int(where["port"] or 6379),
                    db=_db(where["db"] or query.get("db") or "0", url), username=user,
                    password=password, tls=scheme == "rediss")


def split_url(url: str) -> tuple[str, str | None, str]:
    """`(prefix, userinfo, location)`: the scheme with its `://` as written (or "" when
    there is none), the `user:password` part (None when there is none) and the rest.

    The user info runs to the *last* `@`: a password may hold `@`, `:` and `/`, and a
    host, port, database number or query never holds `@`. A unix:// socket path may hold
    one, so there the user info ends at the last `@/`, and a path given at once (`///`)
    has none. parse_url (to connect) and mask_url (to show) both split here, so what is
    hidden is exactly what is sent as the password.
    """
    head, sep, rest = url.partition("://")
    prefix = head + sep if sep else ""
    if not sep:
        rest = url
    if prefix.lower() == "unix://" and (rest.startswith("/") or "@/" in rest):
        if rest.startswith("/"):
            return prefix, None, rest
        userinfo, _, path = rest.rpartition("@/")
        return prefix, userinfo, "/" + path
    userinfo, at, location = rest.rpartition("@")
    return (prefix, userinfo, location) if at else (prefix, None, rest)


def _db(text: str, url: str) -> int:
    if not text.isdigit():
        raise BadUrl(f"the database number must be an integer: {mask_url(url)!r}")
    return int(text)


def _unquote(text: str | None) -> str | None:
    if text is None or "%" not in text:
        return text
    from urllib.parse import unquote

    return unquote(text)


def mask_url(url: str) -> str:
    """The URL with any password replaced by `****`, fit to print: whatever the scheme's
    case, and a password holding `@` is hidden whole (split_url). The one function
    that every place showing the mirror URL uses."""
    prefix, userinfo, location = split_url(url)
    if userinfo is None:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{prefix}{user}:****@{location}" if colon else url


def encode(args: Sequence[Any]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if type(arg) is bytes else (
            arg.encode() if type(arg) is str else str(arg).encode())
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts)


class Connection:
    """One connection; `call` and `call_many` send and wait for the replies."""

    def __init__(self, sock, timeout_s: float):
        self._sock = sock
        self._buffer = bytearray()
        self.timeout_s = timeout_s

    @classmethod
    def open(cls, endpoint: Endpoint, timeout_s: float) -> "Connection":
        """Connect within `timeout_s` and log in; the same timeout bounds every reply."""
        try:
            sock = _connect(endpoint, timeout_s)
        except OSError as exc:
            raise Unreachable(_describe(exc)) from None
        conn = cls(sock, timeout_s)
        handshake = _handshake(endpoint)
        if handshake:
            for reply in conn.call_many(handshake):
                if isinstance(reply, ReplyError):
                    conn.close()
                    raise Unreachable(f"login refused: {reply}")
        return conn

    def call(self, *args: Any) -> Any:
        """Send one command; return its reply, raising ReplyError for an error reply."""
        reply = self.call_many([args])[0]
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def call_many(self, commands: Iterable[Sequence[Any]], timeout_s: float | None = None
                  ) -> list[Any]:
        """Send all commands in one write, then read one reply each (pipelining).
        Error replies are returned in place, as ReplyError objects, not raised."""
        payload = [encode(c) for c in commands]
        try:
            self._sock.settimeout(timeout_s or self.timeout_s)
            self._sock.sendall(b"".join(payload))
            return [self._read_reply() for _ in payload]
        except OSError as exc:
            self.close()
            raise Unreachable(_describe(exc)) from None

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def _read_reply(self) -> Any:
        line = self._read_line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if rest == b"-1" else self._read_exactly(int(rest) + 2)[:-2]
        if kind == b"*":
            return None if rest == b"-1" else [self._read_reply() for _ in range(int(rest))]
        raise ConnectionResetError(f"not a RESP reply: {line[:40]!r}")

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._receive()
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 2]
        return line

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._receive()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _receive(self) -> None:
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self._buffer += chunk


def _connect(endpoint: Endpoint, timeout_s: float):
    # The C module, not `socket`: socket.py's enums and helpers cost ~4 ms of start-up in
    # every process that publishes (benchmarked in bench/bench_mirror.py).
    import _socket

    if endpoint.tls:
        return _connect_tls(endpoint, timeout_s)
    if endpoint.unix_path:
        return _connected(_socket.AF_UNIX, endpoint.unix_path, timeout_s)
    last_error: OSError = OSError(f"cannot resolve {endpoint.host}")
    for family, _, _, _, address in _socket.getaddrinfo(endpoint.host, endpoint.port, 0,
                                                        _socket.SOCK_STREAM):
        try:
            sock = _connected(family, address, timeout_s)
        except OSError as exc:
            last_error = exc
            continue
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        return sock
    raise last_error


def _connected(family: int, address, timeout_s: float):
    import _socket

    sock = _socket.socket(family, _socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def _connect_tls(endpoint: Endpoint, timeout_s: float):
    import socket
    import ssl

    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
    return ssl.create_default_context().wrap_socket(sock, server_hostname=endpoint.host)


def _handshake(endpoint: Endpoint) -> list[tuple]:
    commands: list[tuple] = []
    if endpoint.password is not None:
        commands.append(("AUTH", endpoint.username, endpoint.password) if endpoint.username
                        else ("AUTH", endpoint.password))
    if endpoint.db:
        commands.append(("SELECT", endpoint.db))
    return commands


def _describe(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or str(exc) or type(exc).__name__
