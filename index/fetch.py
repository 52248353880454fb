"""Fetch an article URL safely: http(s) only, public addresses only, size and time capped.

The host is resolved once per hop, every address is checked, and the socket connects to the very
address that was checked (TLS still verifies the host name), so DNS rebinding has no window.
Redirects are followed by hand and each hop is checked again. Every read stops at one overall
deadline, so a server trickling a byte at a time cannot hold a fetch open either.
"""

from __future__ import annotations

import http.client
import ipaddress
import math
import re
import socket
import ssl
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from .extract import Document, ExtractionError, decode, from_html, from_pdf, from_text, header_charset, sniff
from .settings import FetchSettings

ALLOWED_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "application/pdf")
# Feeds: the XML types, and text/HTML because many servers label their feeds so.
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
    "text/html",
    "text/plain",
)


class FetchError(ExtractionError):
    """A URL that could not be fetched; the message is safe to show to the person who sent it."""


@dataclass
class Fetched:
    url: str
    content_type: str
    body: bytes
    status: int = 200
    # Response headers, names in lower case (ETag, Last-Modified for a conditional GET next time).
    headers: dict[str, str] = field(default_factory=dict)


# Ranges that Python 3.11's is_global lets through but that must not be fetched: IETF protocol
# assignments (192.0.0.0/24), IPv6 site-local and IPv4-compatible (both deprecated), local-use NAT64.
_NOT_PUBLIC_V4 = [ipaddress.ip_network("192.0.0.0/24")]
_NOT_PUBLIC_V6 = [ipaddress.ip_network(n) for n in ("fec0::/10", "::/96", "64:ff9b:1::/48")]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return _is_public(str(ip.ipv4_mapped))
        if any(ip in net for net in _NOT_PUBLIC_V6):
            return False
        # Addresses that carry an IPv4 address (6to4, NAT64) reach that address: check it too.
        embedded = ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None and not _is_public(str(embedded)):
            return False
    elif any(ip in net for net in _NOT_PUBLIC_V4):
        return False
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


class _DeadlineExceeded(TimeoutError):
    pass


class _DeadlineReads:
    """Before each read: fail past the deadline, else wait at most until it (and the timeout)."""

    deadline = math.inf
    read_timeout: float | None = None

    def _read(self, read, *args, **kwargs):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded("deadline passed")
        capped = self.read_timeout is None or remaining < self.read_timeout
        self.settimeout(remaining if capped else self.read_timeout)
        try:
            return read(*args, **kwargs)
        except TimeoutError:
            if capped:
                raise _DeadlineExceeded("deadline passed") from None
            raise

    def recv_into(self, *args, **kwargs):
        return self._read(super().recv_into, *args, **kwargs)

    def recv(self, *args, **kwargs):
        return self._read(super().recv, *args, **kwargs)


class _DeadlineSocket(_DeadlineReads, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineReads, ssl.SSLSocket):
    pass


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to pre-checked addresses instead of resolving the host again."""

    def __init__(self, host, port, infos, timeout, deadline=math.inf):
        super().__init__(host, port, timeout=timeout)
        self._infos = infos
        self._deadline = deadline

    def connect(self):
        self.sock = _connect(self._infos, self.timeout, self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, infos, timeout, deadline=math.inf):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        super().__init__(host, port, timeout=timeout, context=context)
        self._infos = infos
        self._deadline = deadline

    def connect(self):
        sock = _connect(self._infos, self.timeout, self._deadline)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        self.sock.deadline, self.sock.read_timeout = self._deadline, self.timeout


def _connect(infos, timeout, deadline=math.inf) -> socket.socket:
    last: OSError | None = None
    for family, socktype, proto, _, address in infos:
        sock = _DeadlineSocket(family, socktype, proto)
        sock.deadline, sock.read_timeout = deadline, timeout
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError("no address to connect to")


def fetch(
    url: str, settings: FetchSettings, headers: dict[str, str] | None = None, types: tuple[str, ...] = ALLOWED_TYPES
) -> Fetched:
    """GET ``url`` within the limits. ``headers`` may make it conditional (If-None-Match,
    If-Modified-Since): a 304 answer then comes back as ``status`` 304 with an empty body."""
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
        conn = cls(parts.hostname, port, infos, settings.timeout, deadline)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            sent = {"User-Agent": settings.user_agent, "Accept": ", ".join(types), **(headers or {})}
            conn.request("GET", path, headers=sent)
            response = conn.getresponse()
            received = {name.lower(): value for name, value in response.getheaders()}
            if response.status == 304 and headers:
                return Fetched(url, "", b"", 304, received)
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise FetchError(f"{url} redirects without a location")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise FetchError(f"{url} answered HTTP {response.status} {response.reason}")
            content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if content_type and content_type not in types:
                what = "a feed" if types is FEED_TYPES else "an article (HTML, text or PDF)"
                raise FetchError(f"{url} is {content_type}, not {what}")
            body = _read_capped(response, settings.max_bytes, deadline, url)
            body = _decompressed(body, received.get("content-encoding", ""), settings.max_bytes, url)
            return Fetched(url, content_type, body, response.status, received)
        except _DeadlineExceeded:
            raise FetchError(f"{url} took too long to download (more than {settings.timeout * 2:g} s)") from None
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
    while chunk := response.read1(65536):
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"{url} is larger than the limit of {max_bytes:,} bytes")
        if time.monotonic() > deadline:
            raise FetchError(f"{url} took too long to download")
        parts.append(chunk)
    return b"".join(parts)


def _decompressed(body: bytes, encoding: str, max_bytes: int, url: str) -> bytes:
    """The body without the compression a server applied unasked (no Accept-Encoding is sent), capped."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise FetchError(f"{url} is sent compressed as {encoding!r}, which cannot be read")
    # gzip (with its header), or deflate as zlib data; raw deflate is what some servers send for it.
    wbits = 31 if encoding != "deflate" else (15 if body[:1] == b"\x78" else -15)
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise FetchError(f"{url} is sent as {encoding} but is not valid {encoding} data") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise FetchError(f"{url} is larger than the limit of {max_bytes:,} bytes once unpacked")
    return data


def _no_markup(body: bytes, kind: str) -> bool:
    """Plain text labelled text/html (not a single tag): HTML extraction would find no article in it."""
    return kind == "text" and not re.search(rb"<[A-Za-z!/?]", body[:65536])


def fetch_document(url: str, settings: FetchSettings, title: str | None = None) -> Document:
    fetched = fetch(url, settings)
    body = fetched.body
    if not body.strip():
        raise FetchError(f"{url} returned an empty page")
    kind = sniff(body)
    if kind == "binary":
        raise FetchError(f"{url} is not an article (binary content, not HTML, text or PDF)")
    charset = header_charset(fetched.headers.get("content-type"))
    if fetched.content_type == "application/pdf" or kind == "pdf":
        doc = from_pdf(body, title)
    elif (fetched.content_type in ("text/plain", "text/markdown") and kind != "html") or _no_markup(body, kind):
        doc = from_text(decode(body, charset), title)
    else:  # an HTML page served as text/plain too: its markup is not the article's text
        doc = from_html(body, url=fetched.url, title=title, charset=charset)
    doc.url = fetched.url
    doc.source = "url"
    return doc
