"""`torchsm serve`: a real server process on a free loopback port: the page with its
refresh, /metrics for Prometheus, 404, a port in use, Ctrl-C; and hostile clients (issue
20): foreign Host names (DNS rebinding), idle and trickling connections, many at once,
clients that leave mid-response; HEAD and /healthz."""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import default_ctrl_c, torchsm_executable


@pytest.fixture
def server(cli):
    """`torchsm serve --port 0` (the kernel picks a free port); yields its base URL."""
    cli("nova", "add", "torch")
    proc = subprocess.Popen([*torchsm_executable(), "serve", "--port", "0"], env=cli.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=default_ctrl_c)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split()[1].rstrip("/")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_the_page_refreshes_itself(server):
    _, url = server
    code, content_type, body = get(url + "/")
    assert (code, content_type) == (200, "text/html; charset=utf-8")
    assert '<meta http-equiv="refresh" content="30">' in body
    assert 'data-chart="states"' in body


def test_metrics_parse_as_prometheus(server):
    _, url = server
    code, content_type, body = get(url + "/metrics")
    assert code == 200 and content_type.startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {"torchsm_nova_info", "torchsm_health_score"} <= names


def test_unknown_paths_are_404(server):
    _, url = server
    assert get(url + "/etc/passwd")[0] == 404
    assert get(url + "/metrics/x")[0] == 404


def test_ctrl_c_stops_it_quietly(server):
    proc, url = server
    assert get(url + "/")[0] == 200
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read() == ""


def test_a_port_in_use_is_one_line(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli.fails("serve", "--port", str(port), timeout=30)
    assert result.err == (f"torchsm: error: port {port} on 127.0.0.1 is in use: pick "
                          "another with --port\n")
    assert result.out == ""


def test_no_home_is_one_line_before_listening(bare_cli):
    assert bare_cli.fails("serve", "--port", "0", timeout=30).err == (
        f"torchsm: error: no torchsm home at {bare_cli.home}: run `torchsm init`\n")


# --- issue 20, finding 6: hostile clients -------------------------------------------------

def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def ask(url: str, host: str | None, path: str = "/", method: str = "GET",
        version: str = "HTTP/1.1", extra: str = "") -> tuple[int, dict, bytes]:
    """One raw request over a socket, with exactly the Host header given (None: none);
    the status, the headers and the body."""
    head = f"{method} {path} {version}\r\n" + (f"Host: {host}\r\n" if host is not None
                                                else "") + extra + "\r\n"
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=30) as sock:
        sock.sendall(head.encode("latin-1"))
        data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "LocalHost:{port}",
                                  "127.0.0.1", "127.0.0.1:{port}", "[::1]", "[::1]:{port}",
                                  "[0:0:0:0:0:0:0:1]:{port}"])
def test_loopback_host_names_are_served(server, host):
    _, url = server
    code, headers, body = ask(url, host.format(port=port_of(url)))
    assert code == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b'data-chart="states"' in body


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:{port}",
                                  "localhost.evil.com", "localhost.evil.com:{port}",
                                  "127.0.0.1.nip.io", "[::1].evil.com", "evil.com#localhost",
                                  "localhost:{port}@evil.com", "localhost:notaport", "[127.0.0.1]",
                                  "::1", ""])
@pytest.mark.parametrize("path", ["/", "/metrics"])
def test_foreign_host_names_are_refused(server, host, path):
    # DNS rebinding: a page of evil.example.com, resolved to 127.0.0.1, asks with its own
    # name; the answer must not carry the home's data
    _, url = server
    code, _, body = ask(url, host.format(port=port_of(url)), path)
    assert code == 421
    assert body == (b"torchsm: error: misdirected request: this server answers only to "
                    b"localhost and loopback addresses\n")


def test_a_host_header_is_required_of_http_1_1_and_must_be_one(server):
    _, url = server
    assert ask(url, None)[0] == 400
    assert ask(url, None, version="HTTP/1.0")[0] == 200  # no browser sends such a request
    assert ask(url, "localhost", extra="Host: evil.example.com\r\n")[0] == 400


@pytest.mark.parametrize("path, code, content_type", [
    ("/", 200, "text/html; charset=utf-8"), ("/metrics", 200, "text/plain; version=0.0.4"),
    ("/healthz", 200, "text/plain; charset=utf-8"), ("/nope", 404, "text/plain; charset=utf-8")])
def test_head_answers_like_get_without_a_body(server, path, code, content_type):
    _, url = server
    got, headers, body = ask(url, "localhost", path, method="HEAD")
    assert (got, body) == (code, b"")
    assert headers["content-type"].startswith(content_type)
    assert int(headers["content-length"]) > 0


def test_healthz(server):
    _, url = server
    assert get(url + "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


def test_healthz_says_when_the_database_cannot_be_read(server, cli):
    _, url = server
    (cli.home / "torchsm.db").write_bytes(b"not a database" * 100)
    code, _, body = get(url + "/healthz")
    assert code == 503 and body.startswith("torchsm: error: database error: ")


def test_an_idle_connection_is_closed(server):
    from torchsm.observe.http_server import IDLE_S

    _, url = server
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=IDLE_S + 30) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, nothing sent
    assert time.monotonic() - started >= IDLE_S - 1


def test_a_request_trickled_byte_by_byte_is_cut_at_its_deadline(server):
    # slowloris: each byte comes well within the idle timeout, the request never ends
    from torchsm.observe.http_server import REQUEST_S

    _, url = server
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        started = time.monotonic()
        while time.monotonic() - started < REQUEST_S + 30:
            try:
                sock.sendall(b"X")
            except OSError:
                break  # closed
            if select.select([sock], [], [], 0.5)[0]:
                assert sock.recv(65536) == b""
                break
        else:
            raise AssertionError("the server kept the trickling connection open")


def test_connections_are_bounded_and_queued_beyond_the_bound(server):
    from torchsm.observe.http_server import MAX_CONNECTIONS

    proc, url = server
    idle = [socket.create_connection(("127.0.0.1", port_of(url)), timeout=30)
            for _ in range(MAX_CONNECTIONS + 20)]
    try:
        time.sleep(1)  # let the server take in what it will
        assert threads(proc.pid) <= MAX_CONNECTIONS + 2  # not a thread each
        waiting = idle[-1]
        waiting.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        for sock in idle[:-1]:
            sock.close()  # their slots free at once
        assert read_all(waiting).startswith(b"HTTP/1.0 200 ")  # queued, then served
    finally:
        for sock in idle:
            sock.close()


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_client_that_leaves_mid_response_leaves_no_traceback(server):
    proc, url = server
    for path in ("/", "/metrics", "/"):
        sock = socket.create_connection(("127.0.0.1", port_of(url)), timeout=30)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, before the page is written
    half = socket.create_connection(("127.0.0.1", port_of(url)), timeout=30)
    half.sendall(b"GET / HTTP/1.1\r\nHo")
    half.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    half.close()  # a reset mid-request
    assert get(url + "/healthz")[0] == 200  # still serving
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read() == ""
