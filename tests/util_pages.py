"""A loopback site whose pages a test can change between requests: articles, feeds, 304 answers."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from util_http import RawServer

from index.settings import FetchSettings

# Fetch settings for pages served on loopback (refused by default, as private addresses).
FETCH = FetchSettings(timeout=5, allow_private_addresses=True)


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: str = "200 OK"
    etag: str | None = None
    last_modified: str | None = None


class Site:
    """Serves ``pages[path]``; answers 304 when the request's If-None-Match or If-Modified-Since matches.

    ``hits[path]`` counts requests per path; ``delay`` slows every article page (not feeds) down,
    so that a test can kill a process in the middle of a poll.
    """

    def __init__(self, delay: float = 0.0):
        self.pages: dict[str, Page] = {}
        self.hits: dict[str, int] = {}
        self.delay = delay
        self._lock = threading.Lock()
        self.server = RawServer(self._handle)

    @property
    def url(self) -> str:
        return self.server.url

    def html(self, path: str, title: str, paragraphs: list[str], published: str | None = None) -> str:
        meta = f'<meta property="article:published_time" content="{published}">' if published else ""
        body = "".join(f"<p>{p}</p>" for p in paragraphs)
        page = (
            f"<html><head><title>{title}</title>{meta}</head>"
            f"<body><article><h1>{title}</h1>{body}</article></body></html>"
        )
        self.pages[path] = Page(page.encode("utf-8"))
        return self.url + path

    def _handle(self, conn: socket.socket, head: bytes) -> None:
        request = head.decode("latin-1")
        path = request.split(" ", 2)[1].split("?")[0]  # query strings (tracking parameters) aside
        headers = {
            line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
            for line in request.split("\r\n")[1:]
            if ":" in line
        }
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
        page = self.pages.get(path)
        if page is None:
            return _send(conn, "404 Not Found", b"not here", "text/plain", [])
        if self.delay and "xml" not in page.content_type:
            time.sleep(self.delay)
        extra = []
        if page.etag:
            extra.append(f"ETag: {page.etag}")
        if page.last_modified:
            extra.append(f"Last-Modified: {page.last_modified}")
        if (page.etag and headers.get("if-none-match") == page.etag) or (
            page.last_modified and headers.get("if-modified-since") == page.last_modified
        ):
            return _send(conn, "304 Not Modified", b"", None, extra)
        _send(conn, page.status, page.body, page.content_type, extra)

    def close(self) -> None:
        self.server.close()


def _send(conn: socket.socket, status: str, body: bytes, content_type: str | None, extra: list[str]) -> None:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close", *extra]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
