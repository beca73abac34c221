"""`torchsm serve`: the dashboard and the Prometheus metrics over HTTP, to this machine only.

`/` is the dashboard page (torchsm.observe.dashboard) with a refresh meta, drawn anew for each
request; `/metrics` is the Prometheus text format (torchsm.observe.prometheus) over the same
window; `/healthz` says `ok` when the database can be read; anything else is 404. HEAD
answers as GET without the body. Each request reads the database in its own connection,
so a slow scrape never holds another.

The page has no authentication, so what reaches it is bounded (issue 20):
- it listens on 127.0.0.1 only, and answers only requests whose Host is `localhost` or a
  loopback address (any port): a web page in the user's browser whose own name an
  attacker re-points at 127.0.0.1 (DNS rebinding) sends its own name and gets 421;
- at most MAX_CONNECTIONS are served at once, each in a thread; more wait in the listen
  queue, not in threads;
- a connection that sends nothing for IDLE_S, or has not sent its whole request head
  REQUEST_S after it came, is closed (a client trickling a byte at a time included); a
  response has SEND_S to be taken;
- a client that leaves mid-request or mid-response is nobody's error: no traceback.
"""

from __future__ import annotations

import errno
import io
import ipaddress
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from torchsm.config import Config, Home
from torchsm.errors import TorchsmError
from torchsm.storage import store

HOST = "127.0.0.1"  # never another interface: the page shows the home's data unauthenticated
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
MAX_CONNECTIONS = 16
IDLE_S = 5.0  # silence allowed between a client's bytes
REQUEST_S = 10.0  # for a whole request head, from the connection's start
SEND_S = 30.0  # for a whole response
METRICS_WINDOW_S = 86400.0  # /metrics without --since: as `torchsm metrics`
MISDIRECTED = ("torchsm: error: misdirected request: this server answers only to localhost "
               "and loopback addresses\n")
_HOST_HEADER = re.compile(r"(\[[^\]]*\]|[^:\[\]]*)(?::\d{0,5})?")


def open_server(home: Home, config: Config, port: int, since_s: float | None,
                refresh_s: float, utc: bool = False) -> ThreadingHTTPServer:
    """A server bound to HOST:port, not yet serving; a home that cannot be read or a port
    that cannot be bound is a TorchsmError (one line, before anything is served).
    `since_s` None: the dashboard's own window, and 24 h for the metrics."""
    store.open_store(home, config.db.lock_timeout_s).close()

    class Handler(DashboardHandler):
        pass

    Handler.home, Handler.config = home, config
    Handler.since_s, Handler.refresh_s, Handler.utc = since_s, refresh_s, utc
    try:
        return LoopbackServer((HOST, port), Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TorchsmError(f"port {port} on {HOST} is in use: pick another with "
                               "--port") from None
        raise TorchsmError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None


def is_loopback_host(value: str) -> bool:
    """Whether a Host header names this machine: `localhost` or a loopback address
    (`127.0.0.1`, `[::1]`), with any port. A name, unlike an address, can be re-pointed
    by whoever owns it: only `localhost` is trusted."""
    match = _HOST_HEADER.fullmatch(value)
    if match is None:
        return False
    name = match[1].lower()
    if name == "localhost":
        return True
    bracketed = name.startswith("[")  # an IPv6 address, and only that, is in brackets
    try:
        address = ipaddress.ip_address(name[1:-1] if bracketed else name)
    except ValueError:
        return False
    return address.is_loopback and (address.version == 6) == bracketed


class LoopbackServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS of them; a client who leaves
    early is not an error."""

    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        self.slots.acquire()  # beyond the bound, clients wait in the listen queue
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # the client left, or was too slow: nothing to report
        print(f"torchsm: error: serving a request: {type(error).__name__}: {error}",
              file=sys.stderr)


class DeadlineReader(io.RawIOBase):
    """A socket's reads, each allowed IDLE_S of silence and all of them together no
    further than `deadline`: a request trickled a byte at a time still ends."""

    def __init__(self, sock, deadline: float):
        super().__init__()
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(min(IDLE_S, left))
        return self.sock.recv_into(buffer)


class DashboardHandler(BaseHTTPRequestHandler):
    home: Home
    config: Config
    since_s: float | None
    refresh_s: float
    utc: bool
    server_version = "torchsm"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader has no deadline
        self.rfile = io.BufferedReader(DeadlineReader(self.connection,
                                                      time.monotonic() + REQUEST_S))

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        self.connection.settimeout(SEND_S)
        code, content_type, text = self._refusal() or self._page()
        body = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _refusal(self) -> tuple[int, str, str] | None:
        """400 for a Host header missing (HTTP/1.1) or repeated, 421 for a foreign one."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            return 400, TEXT, "torchsm: error: more than one Host header\n"
        if not hosts:
            if self.request_version == "HTTP/1.0":
                return None  # no browser sends one without: not a rebinding
            return 400, TEXT, "torchsm: error: a Host header is required\n"
        return None if is_loopback_host(hosts[0].strip()) else (421, TEXT, MISDIRECTED)

    def _page(self) -> tuple[int, str, str]:
        path = self.path.split("?", 1)[0]
        pages = {"/": self._dashboard, "/metrics": self._metrics, "/healthz": self._health}
        if path not in pages:
            return 404, TEXT, f"not found: {path}\n"
        try:
            return (200, *pages[path]())
        except TorchsmError as exc:  # e.g. the database locked for too long
            return 503, TEXT, f"torchsm: error: {exc.message}\n"
        except Exception as exc:  # one line, the server keeps serving
            print(f"torchsm: error: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 500, TEXT, "torchsm: internal error\n"

    def _dashboard(self) -> tuple[str, str]:
        from torchsm.observe.dashboard import render

        return HTML, render(self.home, self.config, time.time(), self.since_s,
                            refresh_s=self.refresh_s, utc=self.utc)

    def _metrics(self) -> tuple[str, str]:
        from prometheus_client import exposition as client

        from torchsm.observe.prometheus import DatabaseCollector, exposition

        # `exposition` writes the classic text format (names escaped to underscores), so
        # say 0.0.4, which every Prometheus reads; newer clients call 1.0.0 their latest
        content_type = getattr(client, "CONTENT_TYPE_PLAIN_0_0_4", client.CONTENT_TYPE_LATEST)
        since_s = METRICS_WINDOW_S if self.since_s is None else self.since_s
        collector = DatabaseCollector(self.home, self.config, None, since_s)
        return content_type, exposition(collector)

    def _health(self) -> tuple[str, str]:
        """The database opens and its schema is at head (a TorchsmError, 503, if not)."""
        store.open_store(self.home, self.config.db.lock_timeout_s).close()
        return TEXT, "ok\n"

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # quiet: one line per scrape would drown the terminal
