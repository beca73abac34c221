"""A local stand-in for the Anthropic Messages API, for running the real Claude Code CLI
offline (ANTHROPIC_BASE_URL=http://127.0.0.1:PORT).

It counts requests, logs every request body and its headers, and answers each request by
a policy: a plain text reply by default, or a status code with headers (a 429 with the
unified rate-limit headers of a subscription account at its limit, a 529, ...).

A policy is a callable `(request number from 1, body) -> Reply`. A policy that also has an
`answer(number, body, headers)` method is asked through it instead, with the request's
headers (keys lower-cased): `Account` uses that to tell its clients apart.

A Reply with `tool_use` (`Reply(tool_use={"name": "Bash", "input": {"command": "true"}})`,
or `tool_call("true")`) answers with that one tool call instead of text (stop_reason
`tool_use`), as a model does in a tool loop: Claude Code runs the tool and sends its
result back in a new request.

`Account` plays one subscription account shared by every client of the stand-in: a
five-hour window (scaled down to W seconds) that allows N requests. Two accounts are
simply two `StandIn` servers, each with its own `Account`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    text: str = "Done."
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str = "rate_limit_error"
    # a tool call instead of text: {"name": ..., "input": {...}} (an "id" is made up if
    # missing); the model then ends its message with stop_reason "tool_use"
    tool_use: dict | None = None
    # the tokens the message reports (as the API's `usage`: input_tokens, output_tokens,
    # cache_creation_input_tokens, cache_read_input_tokens); None: 10 in, 5 out
    usage: dict | None = None

    def content(self) -> list[dict]:
        if self.tool_use is None:
            return [{"type": "text", "text": self.text}]
        call = self.tool_use
        return [{"type": "tool_use", "id": call.get("id") or "toolu_standin",
                 "name": call["name"], "input": call.get("input") or {}}]

    @property
    def stop_reason(self) -> str:
        return "end_turn" if self.tool_use is None else "tool_use"


def tool_call(command: str = "true", name: str = "Bash", **extra) -> Reply:
    """A reply that runs one shell command with Claude Code's Bash tool."""
    return Reply(tool_use={"name": name, "input": {"command": command}}, **extra)


Policy = Callable[[int, dict], Reply]  # (request number from 1, request body) -> Reply


def always_text(text: str = "Done.") -> Policy:
    return lambda _n, _body: Reply(text=text)


# the short name a window has in the header names (`...-unified-5h-utilization`)
WINDOW_HEADER_NAMES = {"five_hour": "5h", "seven_day": "7d"}


def unified_headers(utilization: float, reset: int, status: str,
                    window: str = "five_hour") -> dict[str, str]:
    """The rate-limit headers of a subscription account (status: allowed,
    allowed_warning or rejected; reset: epoch seconds). With them Claude Code, run with
    CLAUDE_CODE_OAUTH_TOKEN, emits a `rate_limit_event` per response in stream-json."""
    short = WINDOW_HEADER_NAMES[window]
    return {"anthropic-ratelimit-unified-status": status,
            "anthropic-ratelimit-unified-reset": str(reset),
            f"anthropic-ratelimit-unified-{short}-utilization": str(utilization),
            f"anthropic-ratelimit-unified-{short}-reset": str(reset),
            f"anthropic-ratelimit-unified-{short}-status": status,
            "anthropic-ratelimit-unified-representative-claim": window}


def client_tag(headers: dict[str, str] | None, body: dict) -> str | None:
    """Which client sent a request: Claude Code's `X-Claude-Code-Session-Id` header, else
    the body's `metadata.user_id`, else None. See `Account` for what 2.1.332 sends."""
    session = {k.lower(): v for k, v in (headers or {}).items()}.get(
        "x-claude-code-session-id")
    if session:
        return session
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    return str(user_id) if user_id else None


@dataclass
class Window:
    """One window of an account: [start, end), its accepted and refused requests."""

    index: int
    start: int
    end: int
    accepted: int = 0
    refused: int = 0


@dataclass(frozen=True)
class AccountRequest:
    time: float
    window: int
    accepted: bool
    client: str | None


class Account:
    """A subscription account shared by every client of a stand-in: each window of
    `window_s` seconds allows `allowance` /v1/messages requests, from whichever client.

    Windows are [start + kW, start + (k+1)W) by `clock` (default: `time.time`; `start`
    defaults to the clock's current whole second), so a fresh window begins every W
    seconds whether or not any request came in the last one. The k-th request of a window
    (k <= N) gets a 200 with the unified headers: utilization k/N, status `allowed` below
    `warning_at` and `allowed_warning` from it, reset = the window's end (integer epoch
    seconds, W and start being whole seconds). A request past N gets a 429
    `rate_limit_error` with status `rejected`, utilization 1.0 and the same reset, and is
    counted as refused.

    Use it as a StandIn's policy (`StandIn(Account(...))`, or set `standin.policy`).
    It is thread-safe: concurrent requests never get more than N accepted in a window.

    Clients are told apart by `client_tag`. What Claude Code 2.1.332 sends (seen with
    `claude -p` in subscription mode): headers `Authorization: Bearer <the OAuth token>`,
    `User-Agent: claude-cli/2.1.332 (external, sdk-cli)`, `x-app: cli`, the
    `X-Stainless-*` SDK headers (retry count, OS, runtime) and
    `X-Claude-Code-Session-Id: <uuid>`, new for every `claude -p` (kept by a Stop-hook
    continuation, and by `-c`/`--resume`, which keep the session id). The body's
    `metadata.user_id` is a JSON string `{"device_id": <64 hex, one per config dir>,
    "account_uuid": "", "session_id": <the same uuid>}`. So the tag is the session id:
    one per process unless sessions are resumed; nothing names the process itself.
    """

    def __init__(self, window_s: int, allowance: int, warning_at: float = 0.8,
                 clock: Callable[[], float] = time.time, start: int | None = None,
                 window_name: str = "five_hour", text: str = "Done."):
        if window_s <= 0 or window_s != int(window_s):
            raise ValueError(f"window_s must be a positive whole number of seconds: {window_s}")
        if allowance < 1:
            raise ValueError(f"allowance must be at least 1: {allowance}")
        if window_name not in WINDOW_HEADER_NAMES:
            raise ValueError(f"window_name must be one of {sorted(WINDOW_HEADER_NAMES)}")
        start = int(clock()) if start is None else start
        if start != int(start):
            raise ValueError(f"start must be a whole epoch second: {start}")
        self.window_s, self.allowance, self.warning_at = int(window_s), allowance, warning_at
        self.clock, self.start = clock, int(start)
        self.window_name, self.text = window_name, text
        self._windows: dict[int, Window] = {}
        self._requests: list[AccountRequest] = []
        self._lock = threading.Lock()
        self._created = self.window_index(clock())  # where report() begins

    def __call__(self, number: int, body: dict) -> Reply:
        return self.answer(number, body, None)

    def answer(self, number: int, body: dict, headers: dict[str, str] | None) -> Reply:
        now = self.clock()
        with self._lock:
            window = self._window(self.window_index(now))
            accepted = window.accepted < self.allowance
            if accepted:
                window.accepted += 1
            else:
                window.refused += 1
            used = window.accepted
            self._requests.append(AccountRequest(now, window.index, accepted,
                                                 client_tag(headers, body)))
        if not accepted:
            return Reply(status=429, error_type="rate_limit_error",
                         text="This request would exceed your account's rate limit.",
                         headers=unified_headers(1.0, window.end, "rejected",
                                                 self.window_name))
        utilization = used / self.allowance
        status = "allowed_warning" if utilization >= self.warning_at else "allowed"
        return Reply(text=self.text,
                     headers=unified_headers(utilization, window.end, status, self.window_name))

    def window_index(self, t: float) -> int:
        return math.floor((t - self.start) / self.window_s)

    def window_at(self, t: float) -> Window:
        """The window holding time t (a copy), with what it has counted so far."""
        with self._lock:
            return replace(self._window(self.window_index(t)))

    @property
    def requests(self) -> list[AccountRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def first_window_start(self) -> int | None:
        """The start of the window of the first request (None before any request)."""
        with self._lock:
            if not self._requests:
                return None
            return self._bounds(self._requests[0].window)[0]

    def report(self, now: float | None = None) -> list[dict]:
        """One dict per window, from the window the account was created in (or the first
        request's, if earlier) to the window holding `now` (default: the clock), or the last
        request's if later, empty windows too:
        {"window", "start", "end", "used" (accepted), "refused", "share" (used / N),
        "clients" ({tag: accepted}), "whole"}. A window is whole when it had ended by `now`
        and began at or after `first_window_start`: wholly inside the time observed."""
        now = self.clock() if now is None else now
        first = self.first_window_start
        with self._lock:
            indexes = [r.window for r in self._requests] + [self._created,
                                                            self.window_index(now)]
            clients: dict[int, dict] = {}
            for r in self._requests:
                if r.accepted:
                    per = clients.setdefault(r.window, {})
                    per[r.client] = per.get(r.client, 0) + 1
            windows = [replace(self._windows.get(k) or Window(k, *self._bounds(k)))
                       for k in range(min(indexes), max(indexes) + 1)]
        return [{"window": w.index, "start": w.start, "end": w.end, "used": w.accepted,
                 "refused": w.refused, "share": w.accepted / self.allowance,
                 "clients": clients.get(w.index, {}),
                 "whole": first is not None and w.start >= first and w.end <= now}
                for w in windows]

    def _bounds(self, index: int) -> tuple[int, int]:
        start = self.start + index * self.window_s
        return start, start + self.window_s

    def _window(self, index: int) -> Window:
        if index not in self._windows:
            self._windows[index] = Window(index, *self._bounds(index))
        return self._windows[index]


class StandIn:
    def __init__(self, policy: Policy | None = None):
        self.policy = policy or always_text()
        self.bodies: list[dict] = []
        self.request_headers: list[dict[str, str]] = []  # per body, keys lower-cased
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def message_requests(self) -> int:
        with self._lock:
            return len(self.bodies)

    def start(self) -> "StandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def user_texts(self) -> list[str]:
        """Every text the model was sent in user turns, request by request."""
        return [_texts(body) for body in self.bodies]

    def _record(self, path: str, body: dict, headers: dict[str, str]) -> int:
        with self._lock:
            self.paths.append(path)
            if path.startswith("/v1/messages") and "count_tokens" not in path:
                self.bodies.append(body)
                self.request_headers.append(headers)
                return len(self.bodies)
            return 0

    def _reply(self, number: int, body: dict, headers: dict[str, str]) -> Reply:
        policy = self.policy
        answer = getattr(policy, "answer", None)
        return answer(number, body, headers) if answer else policy(number, body)

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._send(200, b"", "text/plain")

            def do_GET(self):
                self._send(200, b"{}", "application/json")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                headers = {key.lower(): value for key, value in self.headers.items()}
                number = standin._record(self.path, body, headers)
                if "count_tokens" in self.path:
                    self._send(200, b'{"input_tokens": 10}', "application/json")
                    return
                if number == 0:
                    self._send(200, b"{}", "application/json")
                    return
                reply = standin._reply(number, body, headers)
                if reply.status != 200:
                    error = {"type": "error", "error": {"type": reply.error_type,
                                                        "message": reply.text}}
                    self._send(reply.status, json.dumps(error).encode(), "application/json",
                               reply.headers)
                elif body.get("stream"):
                    self._send(200, _sse(reply, body), "text/event-stream", reply.headers)
                else:
                    self._send(200, json.dumps(_message(reply, body)).encode(),
                               "application/json", reply.headers)

            def _send(self, status, payload, ctype, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("request-id", "req_standin")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _message(reply: Reply, body: dict) -> dict:
    return {"id": "msg_standin", "type": "message", "role": "assistant",
            "model": body.get("model", "claude-standin"),
            "content": reply.content(), "stop_reason": reply.stop_reason,
            "stop_sequence": None, "usage": _usage(reply)}


def _usage(reply: Reply) -> dict:
    return reply.usage or {"input_tokens": 10, "output_tokens": 5}


def _sse(reply: Reply, body: dict) -> bytes:
    # the stream reports input (and cache) tokens at its start, output tokens at its end
    start = _message(reply, body) | {"content": [], "stop_reason": None,
                                     "usage": _usage(reply) | {"output_tokens": 1}}
    events = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(reply.content()):
        if block["type"] == "tool_use":
            opened = block | {"input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            opened = block | {"text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        events += [
            ("content_block_start", {"type": "content_block_start", "index": index,
                                     "content_block": opened}),
            ("content_block_delta", {"type": "content_block_delta", "index": index,
                                     "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events += [
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                           "usage": {"output_tokens": _usage(reply)["output_tokens"]}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n"
                   for name, data in events).encode()


def _texts(body: dict) -> str:
    parts = []
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(block.get("text", "") for block in content or []
                         if isinstance(block, dict))
    return "\n".join(parts)
