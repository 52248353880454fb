"""Fetch an article URL safely: http(s) only, public addresses only, size and time capped.

The host is resolved once per hop, every address is checked, and the socket connects to the very
address that was checked (TLS still verifies the host name), so DNS rebinding has no window.
Redirects are followed by hand and each hop is checked again.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .extract import Document, ExtractionError, from_html, from_pdf, from_text
from .settings import FetchSettings

ALLOWED_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "application/pdf")


class FetchError(ExtractionError):
    """A URL that could not be fetched; the message is safe to show to the person who sent it."""


@dataclass
class Fetched:
    url: str
    content_type: str
    body: bytes


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int, allow_private: bool) -> list[tuple]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchError(f"cannot resolve host {host!r}") from None
    if not allow_private:
        for info in infos:
            if not _is_public(info[4][0]):
                raise FetchError(f"refusing to fetch {host}: it resolves to a non-public address ({info[4][0]})")
    return infos


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to pre-checked addresses instead of resolving the host again."""

    def __init__(self, host, port, infos, timeout):
        super().__init__(host, port, timeout=timeout)
        self._infos = infos

    def connect(self):
        self.sock = _connect(self._infos, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, infos, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._infos = infos

    def connect(self):
        sock = _connect(self._infos, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _connect(infos, timeout) -> socket.socket:
    last: OSError | None = None
    for family, socktype, proto, _, address in infos:
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError("no address to connect to")


def fetch(url: str, settings: FetchSettings) -> Fetched:
    deadline = time.monotonic() + settings.timeout * 2
    for _ in range(settings.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f"only http and https links can be added, not {parts.scheme or 'this'!r}")
        if not parts.hostname:
            raise FetchError(f"not a valid link: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = resolve(parts.hostname, port, settings.allow_private_addresses)
        cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = cls(parts.hostname, port, infos, settings.timeout)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", path, headers={"User-Agent": settings.user_agent, "Accept": ", ".join(ALLOWED_TYPES)})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"{url} redirects without a location")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise FetchError(f"{url} answered HTTP {response.status} {response.reason}")
            content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if content_type and content_type not in ALLOWED_TYPES:
                raise FetchError(f"{url} is {content_type}, not an article (HTML, text or PDF)")
            return Fetched(url, content_type, _read_capped(response, settings.max_bytes, deadline, url))
        except TimeoutError:
            raise FetchError(f"{url} did not answer within {settings.timeout:g} s") from None
        except ssl.SSLError as exc:
            raise FetchError(f"TLS error for {url}: {exc.reason or exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
    raise FetchError(f"too many redirects (more than {settings.max_redirects})")


def _read_capped(response: http.client.HTTPResponse, max_bytes: int, deadline: float, url: str) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"{url} is too large ({int(declared):,} bytes; the limit is {max_bytes:,})")
    parts, size = [], 0
    while chunk := response.read(65536):
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"{url} is larger than the limit of {max_bytes:,} bytes")
        if time.monotonic() > deadline:
            raise FetchError(f"{url} took too long to download")
        parts.append(chunk)
    return b"".join(parts)


def fetch_document(url: str, settings: FetchSettings, title: str | None = None) -> Document:
    fetched = fetch(url, settings)
    body = fetched.body
    if not body.strip():
        raise FetchError(f"{url} returned an empty page")
    if fetched.content_type == "application/pdf" or body.lstrip().startswith(b"%PDF-"):
        doc = from_pdf(body, title)
    elif fetched.content_type in ("text/plain", "text/markdown"):
        doc = from_text(body.decode("utf-8", errors="replace"), title)
    else:
        doc = from_html(body, url=fetched.url, title=title)
    doc.url = fetched.url
    doc.source = "url"
    return doc
