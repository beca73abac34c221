"""Real servers on loopback for the mirror's tests (loaded by conftest.py as a plugin).

- `redis_server`: one `redis-server` for the session on a free 127.0.0.1 port, no
  persistence; `redis_db` hands each test a flushed server.
- `start_redis`: a factory for tests that kill and restart their own server.
- `refused_url`, `silent_url`, `dropping_url`: a server that is down, one that accepts
  connections but never answers, and one whose SYNs are dropped (full accept queue).
Nothing here sends traffic anywhere but 127.0.0.1.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class RedisServer:
    """A `redis-server` process on loopback; `persistent` makes every acknowledged write
    survive a kill -9 (append-only file, fsync always)."""

    def __init__(self, workdir: Path, port: int | None = None, persistent: bool = False,
                 password: str | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.persistent = persistent
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def command(self) -> list[str]:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        return ["redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
                *persistence, "--dir", str(self.workdir), "--logfile",
                str(self.workdir / "redis.log"), "--protected-mode", "yes",
                *(["--requirepass", self.password] if self.password else [])]

    def start(self) -> "RedisServer":
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed: apt-get install redis-server "
                        "(scripts/test does it on a fresh machine)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self._wait_until_answering()
        return self

    def _wait_until_answering(self, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            try:
                if self.client().ping():
                    return
            except Exception:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """kill -9: whatever was not on disk is gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self):
        import redis

        return redis.Redis(host=LOOPBACK, port=self.port, password=self.password,
                           socket_timeout=5, socket_connect_timeout=1)

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text()[-2000:] if path.exists() else ""


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> RedisServer:
    """The session's server, emptied for this test."""
    if redis_server.proc.poll() is not None:
        redis_server.start()
    redis_server.client().flushall()
    return redis_server


@pytest.fixture
def start_redis(tmp_path):
    """Start servers of the test's own; all are stopped at the end."""
    started: list[RedisServer] = []

    def start(port: int | None = None, persistent: bool = False,
              password: str | None = None) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", port, persistent,
                             password).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def refused_url() -> str:
    """A loopback port nothing listens on: connections are refused at once."""
    return f"redis://{LOOPBACK}:{free_port()}/0"


class SilentServer:
    """Accepts connections (the kernel does) and never answers a byte; counts them, so a
    test can tell how often a client tried without timing it."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.url = f"redis://{LOOPBACK}:{self.listener.getsockname()[1]}/0"
        self.accepted: list[socket.socket] = []

    def connections(self) -> int:
        """Connections made so far (each completed its handshake in the kernel's queue)."""
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except BlockingIOError:
                return len(self.accepted)

    def close(self) -> None:
        for sock in self.accepted + [self.listener]:
            sock.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def silent_url(silent_server) -> str:
    """Accepts connections (the kernel does) and never answers a byte."""
    return silent_server.url


@pytest.fixture
def dropping_url():
    """A listener whose accept queue is full: the kernel drops further SYNs, so a connect
    hangs until its timeout, like a black-holed host."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex((LOOPBACK, port))
        fillers.append(filler)
    time.sleep(0.05)
    yield f"redis://{LOOPBACK}:{port}/0"
    for sock in fillers + [listener]:
        sock.close()
