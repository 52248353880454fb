"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for the LLM tests.

It speaks ``POST /v1/chat/completions`` over real HTTP. Each test sets what the "model" says:
a fixed text, a function of the request, a raw (malformed) body, an HTTP status, or a delay
longer than the client's timeout. Every request is kept for assertions.

A request with ``"stream": true`` gets server-sent events: the reply word by word (``piece_delay``
apart, after ``delay``), then ``data: [DONE]``; ``raw_events`` sends given lines instead, and
``break_after`` drops the connection after that many pieces (a server dying mid-answer).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = str | Callable[[dict], str]


@dataclass
class Behaviour:
    reply: Reply = "NOT_FOUND"
    raw: bytes | None = None  # sent as the body instead of a chat-completions object
    content_type: str = "application/json"  # of a raw body
    status: int = 200
    delay: float = 0.0
    piece_delay: float = 0.0
    raw_events: list[str] | None = None
    break_after: int | None = None


@dataclass
class LoopbackLLM:
    """The running server; ``base_url`` is what goes into ``LLMSettings.base_url``."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    # (arrived, last byte about to go out) per request, monotonic: no client can see the end before it.
    spans: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _completion(model: str, content: str) -> bytes:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    return json.dumps(body).encode()


def _chunk(content: str, finish: str | None = None) -> dict:
    delta = {"content": content} if content else {}
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def start_server() -> LoopbackLLM:
    state: dict[str, LoopbackLLM] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            llm = state["llm"]
            self.arrived = time.monotonic()
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, b'{"error": "not found"}')
                return
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with llm.lock:
                llm.requests.append(request)
                llm.headers.append(dict(self.headers))
            self._answer(llm, request)

        def _ending(self) -> None:
            with state["llm"].lock:
                state["llm"].spans.append((self.arrived, time.monotonic()))

        def _answer(self, llm: LoopbackLLM, request: dict) -> None:
            behaviour = llm.behaviour
            if behaviour.delay:
                time.sleep(behaviour.delay)
            if behaviour.raw is not None:
                self._send(behaviour.status, behaviour.raw, behaviour.content_type)
                return
            reply = behaviour.reply(request) if callable(behaviour.reply) else behaviour.reply
            if request.get("stream") and behaviour.status == 200:
                self._stream(behaviour, reply)
                return
            self._send(behaviour.status, _completion(request.get("model", ""), reply))

        def _stream(self, behaviour: Behaviour, reply: str) -> None:
            pieces = re.findall(r"\s*\S+", reply)
            events = behaviour.raw_events
            if events is None:
                events = [f"data: {json.dumps(_chunk(piece))}" for piece in pieces]
                events.append(f"data: {json.dumps(_chunk('', 'stop'))}")
                events.append("data: [DONE]")
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i, event in enumerate(events):
                    if behaviour.break_after is not None and i >= behaviour.break_after:
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)  # gone without a word, as after a kill
                        return
                    if i and behaviour.piece_delay:
                        time.sleep(behaviour.piece_delay)
                    if i == len(events) - 1:
                        self._ending()
                    self.wfile.write(f"{event}\n\n".encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass  # the client gave up

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self._ending()
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="loopback-llm", daemon=True)
    llm = LoopbackLLM(server, thread)
    state["llm"] = llm
    thread.start()
    return llm
