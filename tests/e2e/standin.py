"""A local stand-in for the Anthropic Messages API, for running the real Claude Code CLI
offline (ANTHROPIC_BASE_URL=http://127.0.0.1:PORT).

It counts requests, logs every request body, and answers each request by a policy: a
plain text reply by default, or a status code with headers (a 429 with the unified
rate-limit headers of a subscription account at its limit, a 529, ...).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    text: str = "Done."
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str = "rate_limit_error"


Policy = Callable[[int, dict], Reply]  # (request number from 1, request body) -> Reply


def always_text(text: str = "Done.") -> Policy:
    return lambda _n, _body: Reply(text=text)


class StandIn:
    def __init__(self, policy: Policy | None = None):
        self.policy = policy or always_text()
        self.bodies: list[dict] = []
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

    def _record(self, path: str, body: dict) -> int:
        with self._lock:
            self.paths.append(path)
            if path.startswith("/v1/messages") and "count_tokens" not in path:
                self.bodies.append(body)
                return len(self.bodies)
            return 0

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
                number = standin._record(self.path, body)
                if "count_tokens" in self.path:
                    self._send(200, b'{"input_tokens": 10}', "application/json")
                    return
                if number == 0:
                    self._send(200, b"{}", "application/json")
                    return
                reply = standin.policy(number, body)
                if reply.status != 200:
                    error = {"type": "error", "error": {"type": reply.error_type,
                                                        "message": reply.text}}
                    self._send(reply.status, json.dumps(error).encode(), "application/json",
                               reply.headers)
                elif body.get("stream"):
                    self._send(200, _sse(reply.text, body), "text/event-stream", reply.headers)
                else:
                    self._send(200, json.dumps(_message(reply.text, body)).encode(),
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


def _message(text: str, body: dict) -> dict:
    return {"id": "msg_standin", "type": "message", "role": "assistant",
            "model": body.get("model", "claude-standin"),
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def _sse(text: str, body: dict) -> bytes:
    start = _message("", body) | {"content": [], "stop_reason": None,
                                  "usage": {"input_tokens": 10, "output_tokens": 1}}
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
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
