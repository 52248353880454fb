"""Feed documents of our own (RSS 2.0, RSS 1.0, Atom 1.0) and article pages for them, on a loopback Site."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from util_pages import Page, Site

TOPICS = ["Brücke", "Bibliothek", "Radweg", "Hallenbad", "Markthalle", "Sternwarte", "Fähre", "Kita", "Bahnhof"]


@dataclass
class Entry:
    guid: str
    title: str
    link: str | None
    summary: str
    date: str  # YYYY-MM-DD
    updated: str | None = None


def story(n: int, version: int = 1) -> list[str]:
    """An article of our own about a made-up town project; ``version`` changes its wording."""
    topic = TOPICS[n % len(TOPICS)]
    return [
        f"Die Stadt Lindenfurt plant Projekt {n}: eine neue {topic} am Nordufer (Stand {version}).",
        f"Der Gemeinderat beriet am Dienstag über Projekt {n} und die Kosten der {topic}. "
        f"Nach Angaben der Verwaltung liegen sie bei {n + 2} Millionen Euro, Fassung {version}.",
        f"Bürgerinnen und Bürger können ihre Vorschläge zur {topic} bis Ende des Monats einreichen. "
        f"Eine Informationsveranstaltung zu Projekt {n} findet im Rathaus statt.",
    ]


def serve_stories(site: Site, numbers, version: int = 1, prefix: str = "/news/") -> list[Entry]:
    entries = []
    for n in numbers:
        url = site.html(f"{prefix}{n}", f"Projekt {n}", story(n, version))
        day = 1 + n % 28
        entries.append(
            Entry(f"urn:lindenfurt:{n}", f"Projekt {n} in Lindenfurt", url, f"Kurz: Projekt {n}.", f"2026-03-{day:02d}")
        )
    return entries


def rss2(entries: list[Entry], title: str = "Lindenfurter Nachrichten") -> str:
    items = "".join(
        "<item>"
        f"<title>{escape(e.title)}</title>"
        + (f"<link>{escape(e.link)}</link>" if e.link else "")
        + f'<guid isPermaLink="false">{escape(e.guid)}</guid>'
        f"<description>{escape(e.summary)}</description>"
        f"<pubDate>{_rfc822(e.date)}</pubDate>"
        "</item>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link><description>Lokales</description>"
        f"{items}</channel></rss>"
    )


def atom(entries: list[Entry], title: str = "Lindenfurter Nachrichten (Atom)") -> str:
    items = "".join(
        "<entry>"
        f"<id>{escape(e.guid)}</id><title>{escape(e.title)}</title>"
        + (f'<link rel="alternate" href="{escape(e.link)}"/>' if e.link else "")
        + f"<published>{e.date}T08:00:00Z</published>"
        f"<updated>{e.updated or e.date + 'T08:00:00Z'}</updated>"
        f"<summary>{escape(e.summary)}</summary>"
        "</entry>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:lindenfurt:feed</id><updated>2026-03-30T08:00:00Z</updated>"
        f"{items}</feed>"
    )


def rss1(entries: list[Entry], title: str = "Lindenfurter Nachrichten (RDF)") -> str:
    seq = "".join(f'<rdf:li rdf:resource="{escape(e.link or e.guid)}"/>' for e in entries)
    items = "".join(
        f'<item rdf:about="{escape(e.link or e.guid)}">'
        f"<title>{escape(e.title)}</title><link>{escape(e.link or '')}</link>"
        f"<description>{escape(e.summary)}</description><dc:date>{e.date}</dc:date>"
        "</item>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<channel rdf:about="http://example.invalid/"><title>{escape(title)}</title>'
        "<link>http://example.invalid/</link><description>Lokales</description>"
        f"<items><rdf:Seq>{seq}</rdf:Seq></items></channel>{items}</rdf:RDF>"
    )


def publish(site: Site, path: str, document: str, kind: str = "rss", **headers) -> str:
    types = {"rss": "application/rss+xml", "atom": "application/atom+xml", "rdf": "application/rdf+xml"}
    site.pages[path] = Page(document.encode("utf-8"), types.get(kind, kind), **headers)
    return site.url + path


def _rfc822(date: str) -> str:
    from datetime import datetime

    return datetime.strptime(date, "%Y-%m-%d").strftime("%a, %d %b %Y 08:00:00 +0000")
