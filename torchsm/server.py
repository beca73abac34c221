"""`torchsm serve`: the dashboard and the Prometheus metrics over HTTP, on 127.0.0.1 only.

`/` is the dashboard page (torchsm.dashboard) with a refresh meta, drawn anew for each
request; `/metrics` is the Prometheus text format (torchsm.prometheus) over the same
window; anything else is 404. Each request reads the database in its own connection, so
a slow scrape never holds another.
"""

from __future__ import annotations

import errno
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from torchsm import store
from torchsm.config import Config, Home
from torchsm.errors import TorchsmError

HOST = "127.0.0.1"  # never another interface: the page shows the home's data unauthenticated
HTML = "text/html; charset=utf-8"


def open_server(home: Home, config: Config, port: int, since_s: float,
                refresh_s: float) -> ThreadingHTTPServer:
    """A server bound to HOST:port, not yet serving; a home that cannot be read or a port
    that cannot be bound is a TorchsmError (one line, before anything is served)."""
    store.open_store(home, config.db.lock_timeout_s).close()

    class Handler(DashboardHandler):
        pass

    Handler.home, Handler.config = home, config
    Handler.since_s, Handler.refresh_s = since_s, refresh_s
    try:
        server = ThreadingHTTPServer((HOST, port), Handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TorchsmError(f"port {port} on {HOST} is in use: pick another with "
                               "--port") from None
        raise TorchsmError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None
    server.daemon_threads = True
    return server


class DashboardHandler(BaseHTTPRequestHandler):
    home: Home
    config: Config
    since_s: float
    refresh_s: float
    server_version = "torchsm"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        path = self.path.split("?", 1)[0]
        pages = {"/": self._dashboard, "/metrics": self._metrics}
        if path not in pages:
            self._send(404, "text/plain; charset=utf-8", f"not found: {path}\n")
            return
        try:
            content_type, body = pages[path]()
        except TorchsmError as exc:  # e.g. the database locked for too long
            self._send(503, "text/plain; charset=utf-8", f"torchsm: error: {exc.message}\n")
            return
        except Exception as exc:  # one line, the server keeps serving
            print(f"torchsm: error: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._send(500, "text/plain; charset=utf-8", "torchsm: internal error\n")
            return
        self._send(200, content_type, body)

    def _dashboard(self) -> tuple[str, str]:
        from torchsm.dashboard import render

        return HTML, render(self.home, self.config, time.time(), self.since_s,
                            refresh_s=self.refresh_s)

    def _metrics(self) -> tuple[str, str]:
        from prometheus_client import exposition as client

        from torchsm.prometheus import DatabaseCollector, exposition

        # `exposition` writes the classic text format (names escaped to underscores), so
        # say 0.0.4, which every Prometheus reads; newer clients call 1.0.0 their latest
        content_type = getattr(client, "CONTENT_TYPE_PLAIN_0_0_4", client.CONTENT_TYPE_LATEST)
        collector = DatabaseCollector(self.home, self.config, None, self.since_s)
        return content_type, exposition(collector)

    def _send(self, code: int, content_type: str, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # quiet: one line per scrape would drown the terminal
