"""`torchsm serve`: a real server process on a free loopback port: the page with its
refresh, /metrics for Prometheus, 404, a port in use, Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import torchsm_executable


@pytest.fixture
def server(cli):
    """`torchsm serve --port 0` (the kernel picks a free port); yields its base URL."""
    cli("nova", "add", "torch")
    proc = subprocess.Popen([*torchsm_executable(), "serve", "--port", "0"], env=cli.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
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
