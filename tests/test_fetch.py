"""URL ingestion against real HTTP servers on loopback: hostile addresses, redirects, sizes, stalls.

With ``allow_private_addresses = false`` every loopback server is off limits, which is right but
leaves nothing to test a redirect or DNS rebinding against. Those tests therefore let exactly one
address, 127.0.0.1, stand in for "the public internet" (``loopback_is_public``) while the real
classifier still judges every other address: redirect targets and rebinding answers point at
127.0.0.2, ::1, 10/8 or 169.254/16, where a second server records whether anything reached it.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from pathlib import Path

import pytest
from util_cli import CLI
from util_http import RawServer, redirect, respond, trickle
from util_pdf import make_pdf, text_page

from index import fetch as fetch_module
from index.fetch import FetchError, _is_public, fetch, fetch_document
from index.kb import DB_FILE
from index.settings import FetchSettings
from index.store import Store

ARTICLE = (
    "Neue Fähre für Lindholm\n\n"
    "Die Gemeinde Lindholm setzt ab Juni eine elektrische Fähre ein. Sie fährt alle 20 Minuten.\n\n"
    "Die Fähre kostet 4,2 Millionen Euro und bietet Platz für 180 Fahrgäste.\n\n"
    "Geladen wird sie mit Strom aus der Solaranlage am Hafen; die erste Fahrt ist für den 3. Juni geplant."
).encode()
HTML = (
    "<!doctype html><html><head><title>Neue Fähre für Lindholm</title></head><body><article>"
    "<h1>Neue Fähre für Lindholm</h1><p>Die Gemeinde Lindholm setzt ab Juni eine elektrische Fähre ein. "
    "Sie fährt alle 20 Minuten zwischen den beiden Anlegern und ersetzt das alte Dieselschiff.</p>"
    "<p>Die Fähre kostet 4,2 Millionen Euro und bietet Platz für 180 Fahrgäste und 40 Fahrräder. "
    "Geladen wird sie mit Strom aus der Solaranlage am Hafen.</p></article></body></html>"
).encode()
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(300)


def settings(allow_private: bool = True, **kwargs) -> FetchSettings:
    values = {"timeout": 0.5, "max_bytes": 100_000, "allow_private_addresses": allow_private, **kwargs}
    return FetchSettings(**values)


@pytest.fixture
def loopback_is_public(monkeypatch):
    """127.0.0.1 plays a public web server; every other address is judged by the real classifier."""
    real = fetch_module._is_public
    monkeypatch.setattr(fetch_module, "_is_public", lambda address: address == "127.0.0.1" or real(address))


@pytest.fixture
def connections(monkeypatch):
    """Every address the fetcher opens a socket to."""
    seen: list[tuple] = []
    real = fetch_module._connect

    def record(infos, *args):
        seen.extend(info[4][:2] for info in infos)
        return real(infos, *args)

    monkeypatch.setattr(fetch_module, "_connect", record)
    monkeypatch.setattr(socket, "create_connection", _forbidden)  # http.client's own, re-resolving connect
    return seen


def _forbidden(*args, **kwargs):
    raise AssertionError(f"socket.create_connection{args} would resolve the host name again")


# --- the address classifier ------------------------------------------------------------------------

NOT_PUBLIC = [
    "127.0.0.1", "127.1.2.3", "0.0.0.0", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fe80::1%1", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1", "fec0::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
    "2001:db8::1", "2001::1", "100::1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2001:4860:4860::8888",
          "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]  # fmt: skip


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_classifier_refuses_non_public(address):
    assert not _is_public(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_classifier_allows_public(address):
    assert _is_public(address)


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "fd00::1", "224.0.0.1", "::ffff:192.168.0.1"])
def test_names_resolving_to_non_public_addresses_are_refused(monkeypatch, connections, address):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda host, port, *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, port))]
    )
    with pytest.raises(FetchError, match="non-public address"):
        fetch("http://intranet.example/", settings(allow_private=False))
    assert connections == []


def test_one_private_answer_among_public_ones_is_enough_to_refuse(monkeypatch, connections):
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 80)) for a in ("8.8.8.8", "10.1.1.1")]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(FetchError, match=r"non-public address \(10.1.1.1\)"):
        fetch("http://mixed.example/", settings(allow_private=False))
    assert connections == []


# --- real servers on loopback ---------------------------------------------------------------------


@pytest.fixture
def server():
    with RawServer(respond(body=ARTICLE)) as s:
        yield s


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port6}/",
        "http://2130706433:{port}/",
        "http://0x7f000001:{port}/",
        "http://0.0.0.0:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "https://127.0.0.1:{port}/",
    ],
)
def test_loopback_is_refused_without_allow_private(server, url):
    with RawServer(respond(body=ARTICLE), host="::1") as server6:
        with pytest.raises(FetchError, match="non-public address"):
            fetch(url.format(port=server.port, port6=server6.port), settings(allow_private=False))
        assert server.requests == [] and server6.requests == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://127.0.0.1/file.txt", "only http and https"),
        ("gopher://127.0.0.1:70/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("data:text/plain,hello", "only http and https"),
        ("//example.org/article", "only http and https"),
        ("http:///no-host", "not a valid link"),
    ],
)
def test_non_http_urls_are_refused(connections, url, message):
    with pytest.raises(FetchError, match=message):
        fetch(url, settings(allow_private=True))
    assert connections == []


def test_fetch_with_allow_private_gets_the_article(server, connections):
    fetched = fetch(server.url + "/article", settings(allow_private=True))
    assert fetched.body == ARTICLE and fetched.content_type == "text/plain"
    assert connections == [("127.0.0.1", server.port)]


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{internal}/secret",
        "http://[::1]:{internal6}/secret",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.2]:{internal}/",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_private_address_is_refused(loopback_is_public, connections, target):
    def secret(conn, head):
        respond(body=b"internal secrets")(conn, head)

    with RawServer(secret, host="127.0.0.2") as internal, RawServer(secret, host="::1") as internal6:
        location = target.format(internal=internal.port, internal6=internal6.port)
        with RawServer(redirect(location)) as public:
            with pytest.raises(FetchError, match="non-public address|only http and https"):
                fetch(public.url + "/start", settings(allow_private=False))
            assert public.requests == ["GET /start HTTP/1.1"]
        assert internal.requests == [] and internal6.requests == []
    assert connections == [("127.0.0.1", public.port)]


def test_redirect_between_public_pages_is_followed(loopback_is_public, connections):
    def handler(conn, head):
        if head.startswith(b"GET /start"):
            redirect("/article", "301 Moved Permanently")(conn, head)
        else:
            respond(body=ARTICLE)(conn, head)

    with RawServer(handler) as public:
        fetched = fetch(public.url + "/start", settings(allow_private=False))
    assert fetched.body == ARTICLE and fetched.url.endswith("/article")


def test_dns_rebinding_cannot_switch_the_address(monkeypatch, loopback_is_public, connections):
    """The name is checked once; the socket connects to that very address, never resolving again.

    The first answer (127.0.0.1, our public stand-in) passes the check; every later answer names
    127.0.0.2 on the same port, where an internal server waits. Nothing may reach it.
    """
    public = RawServer(respond(body=ARTICLE))
    internal = RawServer(respond(body=b"internal secrets"), host="127.0.0.2", port=public.port)
    with public, internal:
        lookups: list[str] = []
        real = socket.getaddrinfo

        def rebinding(host, port, *args, **kwargs):
            if host != "news.example":
                return real(host, port, *args, **kwargs)
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        fetched = fetch(f"http://news.example:{public.port}/article", settings(allow_private=False))
        assert fetched.body == ARTICLE
        assert lookups == ["news.example"]
        assert connections == [("127.0.0.1", public.port)]
        assert internal.requests == []
        # The request still names the host (virtual hosting and TLS name checks work).
        assert public.requests == ["GET /article HTTP/1.1"]
        assert f"Host: news.example:{public.port}".encode() in public.heads[0]


def test_redirect_hop_is_checked_against_its_own_resolution(monkeypatch, loopback_is_public, connections):
    """A redirect back to the same name resolves again, and that answer (now private) is refused."""
    with RawServer(redirect("/next")) as public:
        answers = iter(["127.0.0.1", "10.0.0.5"])
        monkeypatch.setattr(
            socket,
            "getaddrinfo",
            lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))],
        )
        with pytest.raises(FetchError, match=r"non-public address \(10.0.0.5\)"):
            fetch(f"http://news.example:{public.port}/start", settings(allow_private=False))
    assert connections == [("127.0.0.1", public.port)]


# --- sizes, stalls, types, statuses ----------------------------------------------------------------


def test_declared_content_length_over_the_cap_is_refused():
    def handler(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 50000000\r\n\r\n" + b"x" * 1000)

    with (
        RawServer(handler) as s,
        pytest.raises(FetchError, match=r"too large \(50,000,000 bytes; the limit is 100,000\)"),
    ):
        fetch(s.url, settings())


@pytest.mark.parametrize("framing", ["chunked", "close-delimited"])
def test_body_over_the_cap_without_declared_length_is_cut_off(framing):
    sent = []

    def handler(conn, head):
        if framing == "chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(2000):  # 16 MB if nobody stops reading
                conn.sendall(b"2000\r\n" + b"y" * 0x2000 + b"\r\n")
                sent.append(1)
            conn.sendall(b"0\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            for _ in range(2000):
                conn.sendall(b"y" * 0x2000)
                sent.append(1)

    with RawServer(handler) as s:
        started = time.monotonic()
        with pytest.raises(FetchError, match="larger than the limit of 100,000 bytes"):
            fetch(s.url, settings(timeout=2))
        assert time.monotonic() - started < 3
    assert len(sent) < 2000, "the client should have stopped reading early"


def test_server_that_never_answers_times_out():
    stop = threading.Event()
    with RawServer(lambda conn, head: stop.wait(10)) as s:
        started = time.monotonic()
        with pytest.raises(FetchError, match="did not answer within 0.5 s"):
            fetch(s.url, settings())
        stop.set()
    assert time.monotonic() - started < 3


def test_server_that_stalls_mid_body_times_out():
    stop = threading.Event()

    def handler(conn, head):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\nDie Gemeinde ")
        stop.wait(10)

    with RawServer(handler) as s:
        started = time.monotonic()
        with pytest.raises(FetchError, match="did not answer within 0.5 s"):
            fetch(s.url, settings())
        stop.set()
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("part", ["body", "headers"])
def test_server_that_trickles_is_stopped_at_the_deadline(part):
    """One byte every 0.1 s never trips the 0.5 s read timeout; the overall deadline (2 × timeout) must."""
    stop = threading.Event()
    if part == "body":
        handler = trickle(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000\r\n\r\n", b"z" * 100, 0.1, stop
        )
    else:
        handler = trickle(b"HTTP/1.1 200 OK\r\n", b"X-Padding: " + b"z" * 100, 0.1, stop)
    with RawServer(handler) as s:
        started = time.monotonic()
        with pytest.raises(FetchError, match="took too long"):
            fetch(s.url, settings())
        elapsed = time.monotonic() - started
        stop.set()
    assert elapsed < 2.5, f"{elapsed:.1f} s"


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("image/png", PNG, "is image/png, not an article"),
        ("application/octet-stream", b"\x00\x01\x02", "is application/octet-stream, not an article"),
        ("application/json", b'{"a": 1}', "is application/json, not an article"),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42", "is video/mp4"),
        (None, PNG, "binary content"),
        ("text/html", PNG, "binary content"),
        ("text/plain", b"   \n ", "empty page"),
    ],
)
def test_content_that_is_not_an_article_is_refused(content_type, body, message):
    with RawServer(respond(body=body, content_type=content_type)) as s, pytest.raises(FetchError, match=message):
        fetch_document(s.url + "/x", settings())


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain; charset=utf-8", ARTICLE, "180 Fahrgäste"),
        ("text/plain", ARTICLE.decode().encode("cp1252"), "180 Fahrgäste"),
        ("text/html; charset=utf-8", HTML, "40 Fahrräder"),
        ("application/pdf", make_pdf([text_page("Die Faehre kostet 4,2 Millionen Euro.")]), "4,2 Millionen"),
    ],
)
def test_articles_of_each_allowed_type_are_extracted(content_type, body, expected):
    with RawServer(respond(body=body, content_type=content_type)) as s:
        doc = fetch_document(s.url + "/artikel", settings())
    assert expected in doc.text
    assert doc.url == s.url + "/artikel" and doc.source == "url"


def test_body_compressed_unasked_is_unpacked_within_the_cap():
    """No Accept-Encoding is sent, yet some servers gzip anyway: that was refused as 'binary content'."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw_deflate = deflater.compress(HTML) + deflater.flush()
    for encoding, body in [("gzip", gzip.compress(HTML)), ("deflate", zlib.compress(HTML)), ("deflate", raw_deflate)]:
        handler = respond(body=body, content_type="text/html; charset=utf-8", headers=[f"Content-Encoding: {encoding}"])
        with RawServer(handler) as s:
            assert "40 Fahrräder" in fetch_document(s.url + "/artikel", settings()).text
    bomb = gzip.compress(b" " * 5_000_000)  # 5 KB that unpack far beyond max_bytes
    for encoding, body, message in [
        ("gzip", bomb, "larger than the limit of 100,000 bytes once unpacked"),
        ("gzip", HTML, "not valid gzip data"),
        ("br", HTML, "compressed as 'br', which cannot be read"),
    ]:
        handler = respond(body=body, content_type="text/html", headers=[f"Content-Encoding: {encoding}"])
        with RawServer(handler) as s, pytest.raises(FetchError, match=message):
            fetch_document(s.url + "/artikel", settings())


@pytest.mark.parametrize(
    ("status", "message"),
    [("404 Not Found", "answered HTTP 404 Not Found"), ("500 Internal Server Error", "answered HTTP 500")],
)
def test_http_error_gives_a_clear_message(status, message):
    with RawServer(respond(status, b"nope")) as s, pytest.raises(FetchError, match=message):
        fetch(s.url + "/missing", settings())


def test_redirect_loops_and_broken_redirects():
    with RawServer(redirect("/again")) as s, pytest.raises(FetchError, match=r"too many redirects \(more than 5\)"):
        fetch(s.url, settings())
    assert len(s.requests) == 6
    with RawServer(respond("302 Found", b"")) as s, pytest.raises(FetchError, match="redirects without a location"):
        fetch(s.url, settings())


def test_closed_port_gives_a_clear_message():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(FetchError, match="cannot fetch .*ConnectionRefused"):
        fetch(f"http://127.0.0.1:{port}/", settings())


# --- through the CLI: every failure leaves the store as it was ---------------------------------------


@pytest.fixture
def run(monkeypatch, capsys, embedder, tmp_path):
    cli = CLI(monkeypatch, capsys, embedder, tmp_path / "data")
    yield cli
    cli.close()


def _config(tmp_path, allow_private: bool) -> str:
    path = tmp_path / "fetch.toml"
    path.write_text(
        f"[fetch]\nallow_private_addresses = {str(allow_private).lower()}\ntimeout = 0.5\nmax_bytes = 100000\n"
    )
    return str(path)


SCENARIOS = {
    "png": respond(body=PNG, content_type="image/png"),
    "404": respond("404 Not Found", b"missing"),
    "too large": respond(body=b"x" * 200_000),
    "stall": lambda conn, head: time.sleep(1.5),
    "binary as html": respond(body=PNG, content_type="text/html"),
    "empty": respond(body=b""),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_failed_url_add_leaves_store_unchanged(run, tmp_path, scenario):
    config = _config(tmp_path, allow_private=True)
    with RawServer(respond(body=ARTICLE)) as good:
        assert run("add", good.url + "/ok", config=config).code == 0
    before = run.counts()
    with RawServer(SCENARIOS[scenario]) as bad:
        result = run("add", bad.url + "/bad", config=config)
    assert result.code == 1
    assert result.err.startswith("articlebot: ") and result.err.count("\n") == 1, result.err
    assert run.counts() == before


def test_page_without_an_article_is_refused_in_one_line_by_the_real_cli(tmp_path):
    """trafilatura's own warnings ("discarding data", "empty HTML tree") used to come before the refusal."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    page = b"<!doctype html><html><head><title>Leer</title></head><body></body></html>"
    with RawServer(respond(body=page, content_type="text/html")) as s:
        result = subprocess.run(
            [sys.executable, "-m", "bot", "--config", _config(tmp_path, allow_private=True)]
            + ["--data-dir", str(tmp_path / "data"), "add", s.url + "/leer"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr == "articlebot: no article text found on the page\n"


def test_plain_text_labelled_html_is_read_as_text():
    """Text without a single tag, served as text/html, was refused as 'no article text found'."""
    with RawServer(respond(body=ARTICLE, content_type="text/html; charset=utf-8")) as s:
        doc = fetch_document(s.url + "/artikel", settings())
    assert doc.title == "Neue Fähre für Lindholm" and "180 Fahrgäste" in doc.text


def test_loopback_url_add_is_refused_by_default_config(run, tmp_path, server):
    before = run.counts()
    result = run("add", server.url + "/article", config=_config(tmp_path, allow_private=False))
    assert result.code == 1 and "non-public address (127.0.0.1)" in result.err
    assert server.requests == []
    assert run.counts() == before


def test_url_add_success_stores_the_final_url(run, tmp_path):
    """The URL stored is where the redirects ended (the article's own address), not the short link given."""

    def handler(conn, head):
        if head.startswith(b"GET /kurzlink"):
            redirect("/artikel/faehre?utm_source=feed&id=7", "301 Moved Permanently")(conn, head)
        else:
            respond(body=HTML, content_type="text/html")(conn, head)

    with RawServer(handler) as s:
        result = run("add", s.url + "/kurzlink", config=_config(tmp_path, allow_private=True))
    assert result.code == 0 and result.out.startswith("added #1: Neue Fähre für Lindholm")
    assert run.counts()["articles"] == 1
    store = Store(tmp_path / "data" / DB_FILE)
    try:
        assert store.article(1).url == s.url + "/artikel/faehre?utm_source=feed&id=7"
    finally:
        store.close()


def test_https_certificate_is_verified(tmp_path):
    """TLS goes through the pinned, deadline-bound socket and still checks the certificate."""
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls_conn:
                tls_conn.recv(1024)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(FetchError, match="TLS error .*CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            fetch(f"https://127.0.0.1:{port}/", settings())
    finally:
        thread.join(timeout=5)
        listener.close()


def test_redirect_to_private_through_cli_leaves_store_unchanged(run, tmp_path, loopback_is_public):
    with RawServer(respond(body=b"internal secrets"), host="127.0.0.2") as internal:
        with RawServer(redirect(f"http://127.0.0.2:{internal.port}/admin")) as public:
            result = run("add", public.url + "/start", config=_config(tmp_path, allow_private=False))
        assert internal.requests == []
    assert result.code == 1 and "non-public address (127.0.0.2)" in result.err
    assert run.counts()["articles"] == 0
