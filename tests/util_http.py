"""A raw HTTP server on a loopback address, one handler function per test, for hostile responses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable


class RawServer:
    """Accepts connections on ``host`` and lets ``handler(conn, request_head)`` write raw bytes.

    ``requests`` records the request line of every request received, so a test can prove that a
    refused URL was never asked for.
    """

    def __init__(self, handler: Callable[[socket.socket, bytes], None], host: str = "127.0.0.1", port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.requests: list[str] = []
        self.heads: list[bytes] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            self.heads.append(head)
            self.handler(conn, head)
        except OSError:
            pass
        finally:
            conn.close()

    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def respond(status: str = "200 OK", body: bytes = b"", content_type: str | None = "text/plain", headers=()):
    """A handler that answers every request with one complete response."""

    def handler(conn: socket.socket, head: bytes) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.extend(headers)
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    return handler


def redirect(location: str, status: str = "302 Found"):
    return respond(status, b"", None, [f"Location: {location}"])


def trickle(head: bytes, body: bytes, every: float, stop: threading.Event | None = None):
    """Send ``head`` at once, then ``body`` one byte per ``every`` seconds."""

    def handler(conn: socket.socket, request: bytes) -> None:
        conn.sendall(head)
        for i in range(len(body)):
            if stop is not None and stop.is_set():
                return
            conn.sendall(body[i : i + 1])
            time.sleep(every)

    return handler
