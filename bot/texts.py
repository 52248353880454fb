"""What the bot says, in German and English. Plain text with ``str.format`` fields; no markup.

Markup (bold titles, links) is added by the conversation as spans, so these strings stay safe to
escape and equally usable in Telegram and in the terminal.
"""

from __future__ import annotations

import re

from index.sentences import quoted

TEXTS: dict[str, dict[str, str]] = {
    "greeting": {
        "de": "Ich beantworte Fragen zu {articles} – mit Quellenangaben.",
        "en": "I answer questions about {articles} – with sources.",
    },
    "greeting_empty": {
        "de": "Ich beantworte Fragen zu Artikeln – mit Quellenangaben. Noch kenne ich keine.",
        "en": "I answer questions about articles – with sources. I don't know any yet.",
    },
    "latest": {"de": "Neueste Artikel:", "en": "Latest articles:"},
    "how_to_ask": {
        "de": "Schreiben Sie einfach Ihre Frage, zum Beispiel: „Was kostet das neue Stadion?“\n"
        "In Gruppen: /ask <Frage>, mich erwähnen oder auf eine meiner Nachrichten antworten.\n"
        "/sources zeigt alle Artikel.",
        "en": "Just write your question, for example: “What does the new stadium cost?”\n"
        "In groups: /ask <question>, mention me or reply to one of my messages.\n"
        "/sources lists all articles.",
    },
    "how_to_ask_group": {
        "de": "In dieser Gruppe antworte ich auf /ask <Frage>, wenn mich jemand erwähnt oder auf eine meiner "
        "Nachrichten antwortet, zum Beispiel: /ask Was kostet das neue Stadion?\n"
        "Im privaten Chat mit mir genügt die Frage allein.\n"
        "/sources zeigt alle Artikel.",
        "en": "In this group I answer /ask <question>, a message that mentions me, or a reply to one of my "
        "messages, for example: /ask What does the new stadium cost?\n"
        "In a private chat with me, just write the question.\n"
        "/sources lists all articles.",
    },
    "admin_help": {
        "de": "Für Admins: /add <Link> [Titel] oder /add mit Titelzeile und Text, /add als Antwort auf eine Nachricht, "
        "ein Dokument (.txt .md .html .pdf) mit der Beschriftung /add [Titel]; /remove <id>, /update <id>, /list, "
        "/stats, /reindex; Feeds: /subscribe <Link>, /feeds, /unsubscribe <id>.",
        "en": "For admins: /add <link> [title] or /add with a title line and text, /add as a reply to a message, "
        "a document (.txt .md .html .pdf) with the caption /add [title]; /remove <id>, /update <id>, /list, /stats, "
        "/reindex; feeds: /subscribe <link>, /feeds, /unsubscribe <id>.",
    },
    "how_to_ask_chat": {
        "de": "Tippen Sie einfach Ihre Frage ein, zum Beispiel: „Was kostet das neue Stadion?“\n"
        "Eine Zahl allein drückt den Knopf mit dieser Nummer (Zitate, 👍/👎, Blättern).\n"
        "/sources zeigt alle Artikel; /quit oder Strg-D beendet.",
        "en": "Just type your question, for example: “What does the new stadium cost?”\n"
        "A number on its own presses the button with that number (quotes, 👍/👎, paging).\n"
        "/sources lists all articles; /quit or Ctrl-D ends.",
    },
    "admin_help_chat": {
        "de": "Als Admin: /add <Link>; /add <Pfad> für eine Datei (.txt .md .html .pdf); /add allein, dann "
        "Titelzeile und Text einfügen und mit einer Zeile nur aus „.“ abschließen; /remove <id>, /update <id>, "
        "/list, /stats, /reindex; Feeds: /subscribe <Link>, /feeds, /unsubscribe <id>.",
        "en": "As an admin: /add <link>; /add <path> for a file (.txt .md .html .pdf); /add alone, then paste "
        "a title line and the text and end with a line holding only “.”; /remove <id>, /update <id>, /list, /stats, "
        "/reindex; feeds: /subscribe <link>, /feeds, /unsubscribe <id>.",
    },
    "chat_greeting": {
        "de": "articlebot im Terminal – hier sind Sie Admin. Fragen einfach eintippen; /help zeigt alles, "
        "/quit oder Strg-D beendet. Ein eingefügter Artikel (nach /add allein) endet mit einer Zeile nur "
        "aus „.“; einen Knopf drücken Sie mit seiner Nummer.",
        "en": "articlebot in the terminal – you are an admin here. Just type a question; /help shows "
        "everything, /quit or Ctrl-D ends. A pasted article (after /add alone) ends with a line holding "
        "only “.”; press a button by typing its number.",
    },
    "paste_article": {
        "de": "Fügen Sie jetzt den Artikel ein: in der ersten Zeile der Titel, dann der Text; zum Schluss eine Zeile "
        "nur aus „.“.",
        "en": "Paste the article now: its title on the first line, then the text; end with a line holding only “.”.",
    },
    "no_such_file": {"de": "Die Datei {path} gibt es nicht.", "en": "There is no file {path}."},
    "not_a_file": {"de": "{path} ist ein Ordner, keine Datei.", "en": "{path} is a directory, not a file."},
    "not_a_button": {
        "de": "Einen Knopf {number} gibt es nicht (Knöpfe 1–{count}). Eine Frage bitte in Worten.",
        "en": "There is no button {number} (buttons 1–{count}). Please ask a question in words.",
    },
    "no_buttons": {
        "de": "Gerade gibt es keinen Knopf {number} zu drücken. Eine Frage bitte in Worten.",
        "en": "There is no button {number} to press just now. Please ask a question in words.",
    },
    "passage_of": {"de": "Abschnitt {number} von {total}", "en": "passage {number} of {total}"},
    "sources_label": {"de": "Quellen:", "en": "Sources:"},
    "quote_button": {"de": "Zitat [{n}]", "en": "Quote [{n}]"},
    "llm_fallback": {
        "de": "(keine Antwort vom Sprachmodell: Antwort aus den Artikeln zitiert)",
        "en": "(no answer from the language model: answer quoted from the articles)",
    },
    "llm_discarded": {
        "de": "(Die Antwort des Sprachmodells oben belegt nichts mit den Artikeln und gilt nicht.)",
        "en": "(The language model's answer above cites none of the articles and does not count.)",
    },
    "llm_cut_off": {
        "de": "(Hier brach die Antwort des Sprachmodells ab; unten die Antwort aus den Artikeln.)",
        "en": "(The language model's answer broke off here; the answer quoted from the articles follows.)",
    },
    "ask_usage": {"de": "Bitte eine Frage nach /ask schreiben.", "en": "Please write a question after /ask."},
    "too_long": {
        "de": "Die Frage ist zu lang ({length} Zeichen; höchstens {limit}). Bitte kürzer fassen.",
        "en": "That question is too long ({length} characters; at most {limit}). Please shorten it.",
    },
    "add_by_reply": {
        "de": "Ein Artikel? Antworten Sie mit /add auf die Nachricht, um ihn hinzuzufügen.",
        "en": "An article? Reply to the message with /add to add it.",
    },
    "add_by_reply_chat": {
        "de": "Ein Artikel? /add allein eingeben, dann Titelzeile und Text einfügen und mit einer Zeile nur aus „.“ "
        "abschließen; oder /add <Pfad> für eine Datei (.txt .md .html .pdf).",
        "en": "An article? Type /add alone, then paste a title line and the text and end with a line holding only "
        "“.”; or /add <path> for a file (.txt .md .html .pdf).",
    },
    "rate_limited": {
        "de": "Einen Moment bitte: höchstens {limit} Fragen pro Minute. In {seconds} Sekunden geht es weiter.",
        "en": "One moment please: at most {limit} questions a minute. Try again in {seconds} seconds.",
    },
    "failed": {
        "de": "Entschuldigung, dabei ist etwas schiefgegangen. Bitte später noch einmal versuchen.",
        "en": "Sorry, something went wrong. Please try again later.",
    },
    "unknown_command": {
        "de": "Diesen Befehl kenne ich nicht. /help zeigt, was ich kann.",
        "en": "I don't know that command. /help shows what I can do.",
    },
    "document_hint": {
        "de": "Dokumente füge ich nur hinzu, wenn sie die Beschriftung /add tragen.",
        "en": "I only add documents that carry the caption /add.",
    },
    "hello": {
        "de": "Hallo! Fragen Sie mich etwas zu den Artikeln, zum Beispiel: „Was kostet das neue Stadion?“ "
        "/help zeigt, was ich weiß.",
        "en": "Hello! Ask me something about the articles, for example: “What does the new stadium cost?” "
        "/help shows what I know.",
    },
    "thanks_reply": {"de": "Gern geschehen!", "en": "You're welcome!"},
    "document_not_admin": {
        "de": "Dokumente nehme ich nur von den Admins dieses Bots an. Fragen schreiben Sie einfach als Text.",
        "en": "I only take documents from this bot's admins. Just type your questions as text.",
    },
    "text_only": {
        "de": "Ich lese nur Text: Bitte schreiben Sie Ihre Frage als Nachricht. Sprachnachrichten, Bilder und "
        "Sticker verstehe ich nicht.",
        "en": "I can only read text: please type your question. I can't understand voice messages, pictures or "
        "stickers.",
    },
    "admins_only": {
        "de": "Das dürfen leider nur die Admins dieses Bots.",
        "en": "Sorry, only this bot's admins can do that.",
    },
    "articles_header": {"de": "Artikel {first}–{last} von {total}", "en": "Articles {first}–{last} of {total}"},
    "nothing_to_ask": {
        "de": "Ich kenne noch keine Artikel, also kann ich noch keine Frage beantworten. Admins fügen welche mit "
        "/add hinzu.",
        "en": "I don't know any articles yet, so I can't answer questions yet. Admins add them with /add.",
    },
    "no_articles": {
        "de": "Noch keine Artikel. Admins fügen welche mit /add hinzu.",
        "en": "No articles yet. Admins add them with /add.",
    },
    "previous": {"de": "◀ Neuere", "en": "◀ Newer"},
    "next": {"de": "Ältere ▶", "en": "Older ▶"},
    "add_usage": {
        "de": "So fügen Sie einen Artikel hinzu: /add <Link> [Titel], /add gefolgt von Titelzeile und Text, /add als "
        "Antwort auf eine Nachricht oder ein Dokument mit der Beschriftung /add [Titel].",
        "en": "To add an article: /add <link> [title], /add followed by a title line and the text, /add as a reply "
        "to a message, or a document with the caption /add [title].",
    },
    "add_usage_chat": {
        "de": "So fügen Sie einen Artikel hinzu: /add <Link>, /add <Pfad> für eine Datei (.txt .md .html .pdf) "
        "oder /add allein, dann Titelzeile und Text einfügen und mit einer Zeile nur aus „.“ abschließen.",
        "en": "To add an article: /add <link>, /add <path> for a file (.txt .md .html .pdf), or /add alone, "
        "then paste a title line and the text and end with a line holding only “.”.",
    },
    "fetching": {"de": "Lade {url} …", "en": "Fetching {url} …"},
    "downloading": {"de": "Lade {name} herunter …", "en": "Downloading {name} …"},
    "reading": {"de": "Lese {name} …", "en": "Reading {name} …"},
    "indexing": {"de": "Verarbeite {title} …", "en": "Processing {title} …"},
    "added": {
        "de": "Hinzugefügt: #{id} {title} ({passages}).",
        "en": "Added #{id} {title} ({passages}).",
    },
    "paste_maybe_cut": {
        "de": "Der Text ist fast so lang, wie eine Telegram-Nachricht höchstens sein kann (4.096 Zeichen): Längere "
        "Texte teilt Telegram auf mehrere Nachrichten auf. Falls der Artikel weitergeht, schicken Sie ihn als "
        ".txt-Datei mit der Beschriftung /add und entfernen diesen Teil mit /remove {id}.",
        "en": "The text is nearly as long as a Telegram message can be (4,096 characters): Telegram splits longer "
        "texts into several messages. If the article goes on, send it as a .txt file with the caption /add and "
        "remove this part with /remove {id}.",
    },
    "duplicate": {"de": "Nicht hinzugefügt: schon vorhanden als #{id}.", "en": "Not added: already present as #{id}."},
    "not_added": {"de": "Nicht hinzugefügt: {reason}", "en": "Not added: {reason}"},
    "file_type": {
        "de": "{name} hat ein Format, das ich nicht lesen kann (.txt .md .html .pdf).",
        "en": "{name} is a file type I cannot read (.txt .md .html .pdf).",
    },
    "file_size": {
        "de": "{name} ist zu groß ({size} MB; höchstens {limit} MB).",
        "en": "{name} is too large ({size} MB; at most {limit} MB).",
    },
    "remove_usage": {"de": "Bitte die Nummer angeben: /remove <id>", "en": "Please give the number: /remove <id>"},
    "no_such_article": {"de": "Es gibt keinen Artikel #{id}.", "en": "There is no article #{id}."},
    "confirm_remove": {"de": "Artikel #{id} {title} entfernen?", "en": "Remove article #{id} {title}?"},
    "remove_button": {"de": "🗑 Entfernen", "en": "🗑 Remove"},
    "cancel_button": {"de": "Abbrechen", "en": "Cancel"},
    "removed": {"de": "Entfernt: #{id} {title}.", "en": "Removed #{id} {title}."},
    "remove_cancelled": {"de": "Nicht entfernt: #{id}.", "en": "Not removed: #{id}."},
    "stats": {
        "de": "Artikel: {articles}\nAbschnitte: {chunks}\nModell: {model}\nIndex: {index}\nDatenbank: {db_mb} MB\n"
        "Antworten: {answers} (👍 {up}, 👎 {down})",
        "en": "Articles: {articles}\nPassages: {chunks}\nModel: {model}\nIndex: {index}\nDatabase: {db_mb} MB\n"
        "Answers: {answers} (👍 {up}, 👎 {down})",
    },
    "reindexing": {"de": "Baue den Index neu auf …", "en": "Rebuilding the index …"},
    "reembedding": {"de": "Berechne Vektoren neu: {done}/{total} Artikel …", "en": "Re-embedding: {done}/{total} …"},
    "reindexed": {
        "de": "Index neu aufgebaut: {vectors} ({kind}).",
        "en": "Index rebuilt: {vectors} ({kind}).",
    },
    "busy": {
        "de": "Warte, bis die vorige Admin-Aufgabe fertig ist …",
        "en": "Waiting for the previous admin job to finish …",
    },
    "changed_use_update": {
        "de": "Nicht hinzugefügt: #{id} hat diesen Link, aber der Text hat sich seitdem geändert. "
        "/update {id} aktualisiert ihn.",
        "en": "Not added: #{id} has this link, but its text has changed since. /update {id} refreshes it.",
    },
    "update_usage": {"de": "Bitte die Nummer angeben: /update <id>", "en": "Please give the number: /update <id>"},
    "updated": {
        "de": "Aktualisiert: #{id} {title} ({passages}).",
        "en": "Updated #{id} {title} ({passages}).",
    },
    "update_no_link": {
        "de": "Nicht aktualisiert: #{id}: Der Artikel hat keinen http- oder https-Link, "
        "von dem ich ihn neu laden könnte.",
        "en": "Not updated: #{id} has no http(s) link to fetch again (it was added as text or a file).",
    },
    "unchanged": {"de": "Unverändert: #{id} {title}.", "en": "Unchanged: #{id} {title}."},
    "not_updated": {"de": "Nicht aktualisiert: #{id}: {reason}", "en": "Not updated: #{id}: {reason}"},
    "update_is_duplicate": {
        "de": "Nicht aktualisiert: der neue Text von #{id} ist der von #{other}.",
        "en": "Not updated: the new text of #{id} is that of #{other}.",
    },
    "feeds_unavailable": {"de": "Feeds sind hier nicht eingerichtet.", "en": "Feeds are not set up here."},
    "subscribe_usage": {
        "de": "Bitte den Link des Feeds angeben: /subscribe <Link>",
        "en": "Please give the feed's link: /subscribe <link>",
    },
    "not_subscribed": {"de": "Nicht abonniert: {reason}", "en": "Not subscribed: {reason}"},
    "polling_feed": {"de": "Lese den Feed {url} …", "en": "Reading the feed {url} …"},
    "polling_feed_item": {
        "de": "Lese den Feed {url}: Eintrag {n} von {total} …",
        "en": "Reading the feed {url}: item {n} of {total} …",
    },
    "subscribed": {"de": "Abonniert: Feed #{id} ({url}).", "en": "Subscribed to feed #{id} ({url})."},
    "poll_done": {
        "de": "Neu: {added}, aktualisiert: {refreshed}, schon vorhanden: {duplicates}.",
        "en": "New: {added}, updated: {refreshed}, already present: {duplicates}.",
    },
    "poll_skipped": {
        "de": "{skipped} ältere Einträge übergangen.",
        "en": "{skipped} older items left out.",
    },
    "poll_deferred": {
        "de": "{deferred} weitere beim nächsten Abruf.",
        "en": "{deferred} more on the next poll.",
    },
    "poll_item_errors": {
        "de": "{count} Einträge ließen sich nicht laden (ich versuche es wieder).",
        "en": "{count} items could not be loaded (I will try again).",
    },
    "poll_failed": {
        "de": "Der Feed ließ sich nicht lesen: {error} Ich versuche es später wieder.",
        "en": "The feed could not be read: {error} I will try again later.",
    },
    "poll_not_modified": {"de": "Nichts Neues im Feed.", "en": "Nothing new in the feed."},
    "no_feeds": {
        "de": "Noch keine Feeds. /subscribe <Link> abonniert einen.",
        "en": "No feeds yet. /subscribe <link> subscribes to one.",
    },
    "feeds_header": {"de": "Feeds ({count}):", "en": "Feeds ({count}):"},
    "feed_status": {
        "de": "zuletzt geprüft: {check} · zuletzt erfolgreich: {success} · Artikel hinzugefügt: {added}",
        "en": "last check: {check} · last success: {success} · items added: {added}",
    },
    "feed_error": {"de": "letzter Fehler: {error}", "en": "last error: {error}"},
    "feed_retry": {
        "de": "nächster Versuch: {next} ({failures}× in Folge fehlgeschlagen)",
        "en": "next try: {next} (failed {failures}× in a row)",
    },
    "unsubscribe_usage": {
        "de": "Bitte die Nummer des Feeds angeben: /unsubscribe <id>",
        "en": "Please give the feed's number: /unsubscribe <id>",
    },
    "no_such_feed": {"de": "Es gibt keinen Feed #{id}.", "en": "There is no feed #{id}."},
    "unsubscribed": {
        "de": "Abbestellt: Feed #{id} ({url}). Seine Artikel bleiben.",
        "en": "Unsubscribed from feed #{id} ({url}). Its articles stay.",
    },
    "feed_failing": {
        "de": "Feed #{id} ({url}) schlägt seit {since} fehl: {error}",
        "en": "Feed #{id} ({url}) has been failing since {since}: {error}",
    },
    "thanks": {"de": "Danke für die Rückmeldung!", "en": "Thanks for the feedback!"},
    "expired": {"de": "Dieser Knopf ist nicht mehr gültig.", "en": "This button is no longer valid."},
}


# (singular, plural) per language; German "article" as after "zu" (dative plural "Artikeln").
NOUNS: dict[str, dict[str, tuple[str, str]]] = {
    "passage": {"de": ("Abschnitt", "Abschnitte"), "en": ("passage", "passages")},
    "article": {"de": ("Artikel", "Artikeln"), "en": ("article", "articles")},
    "vector": {"de": ("Vektor", "Vektoren"), "en": ("vector", "vectors")},
}


def counted(count: int, noun: str, language: str) -> str:
    """ "1 Abschnitt", "2 Abschnitte", "1 passage": the number with its noun in the right form."""
    forms = NOUNS[noun].get(language) or NOUNS[noun]["en"]
    return f"{count} {forms[0] if count == 1 else forms[1]}"


# Why an article could not be added, in German. The reasons come from index/ in English (for the CLI
# and logs); a German conversation gets the matching explanation instead of a mixed-language sentence.
GERMAN_REASONS: list[tuple[re.Pattern[str], str]] = [
    # Ingestion's refusals (index.extract): what is not an article, and text that cannot be read.
    (
        re.compile(r"too short to be an article \((?P<count>\d+) characters; at least (?P<least>\d+)"),
        "Der Text ist zu kurz für einen Artikel ({count} Zeichen, nötig sind mindestens {least}).",
    ),
    (
        re.compile(r"teaser behind a paywall"),
        "Die Seite zeigt nur den Anfang hinter einer Bezahlschranke, nicht den ganzen Artikel.",
    ),
    (
        re.compile(r"no article text, only short lines"),
        "Auf der Seite steht kein Artikeltext, nur kurze Zeilen (Navigation, Fußzeile oder Hinweise).",
    ),
    (
        re.compile(r"line (?P<line>\d+) is not valid (?P<encoding>.+?) text \(byte (?P<byte>0x[0-9A-F]{2})\)"),
        "Zeile {line} ist kein gültiger {encoding}-Text (Byte {byte}); bitte die Datei als UTF-8 speichern.",
    ),
    (
        re.compile(r"line (?P<line>\d+) holds U\+FFFD replacement characters"),
        "Zeile {line} enthält Ersatzzeichen (\ufffd): der Text wurde beim Umwandeln beschädigt; bitte das Original "
        "schicken.",
    ),
    (
        re.compile(r"refusing to fetch (?P<host>\S+): it resolves to a non-public"),
        "{host} ist eine interne Adresse; solche Links rufe ich aus Sicherheitsgründen nicht ab.",
    ),
    (
        re.compile(r"cannot resolve host '(?P<host>[^']*)'"),
        "Den Server {host} gibt es nicht (der Name lässt sich nicht auflösen).",
    ),
    (
        re.compile(r"has no http\(s\) URL to fetch again"),
        "Der Artikel hat keinen http- oder https-Link, von dem ich ihn neu laden könnte.",
    ),
    (re.compile(r"only http and https links"), "Ich rufe nur http- und https-Links ab."),
    (re.compile(r"not a valid link"), "Das ist kein gültiger Link."),
    (re.compile(r"answered HTTP (?P<status>\d+)"), "Die Seite antwortete mit dem Fehler HTTP {status}."),
    (re.compile(r"redirects without a location|too many redirects"), "Der Link leitet zu oft oder ins Leere weiter."),
    (
        re.compile(r"could not be downloaded from Telegram|downloading the file took too long"),
        "Die Datei ließ sich nicht von Telegram herunterladen.",
    ),
    (re.compile(r"reading the PDF took longer"), "Das PDF ist zu komplex, um es zu lesen."),
    (re.compile(r"did not answer within|took too long"), "Die Seite hat zu lange gebraucht."),
    (re.compile(r"TLS error"), "Die sichere Verbindung (TLS) zur Seite ist gescheitert."),
    (re.compile(r"cannot fetch "), "Die Seite ist nicht erreichbar."),
    (re.compile(r"PDF is encrypted"), "Das PDF ist verschlüsselt; bitte eine ungeschützte Fassung schicken."),
    (re.compile(r"PDF contains no extractable text"), "Das PDF enthält keinen lesbaren Text (ein Scan?)."),
    (re.compile(r"PDF has (?P<pages>\d+) pages"), "Das PDF hat zu viele Seiten ({pages})."),
    (re.compile(r"\bthe PDF\b"), "Das PDF lässt sich nicht lesen (zu groß, zu komplex oder beschädigt)."),
    (re.compile(r"too large|larger than the limit|too long \("), "Das ist zu groß für einen Artikel."),
    (
        re.compile(r"not an article|not a supported type|unsupported file type"),
        "Das ist kein Artikel, den ich lesen kann (HTML, Text, Markdown oder PDF).",
    ),
    (re.compile(r"empty page|no article text|contains no text|is empty"), "Darin steht kein Artikeltext."),
    (re.compile(r"no such file"), "Diese Datei gibt es nicht."),
]


# Why a feed could not be subscribed to or read (index.feeds), in German; checked before GERMAN_REASONS,
# which cover what feeds and articles share (the fetcher's refusals).
GERMAN_FEED_REASONS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"(?P<url>\S+) is not an RSS or Atom feed \(it looks like an HTML page\); the page names its feed: "
            r"subscribe to (?P<feed>\S+)"
        ),
        "{url} ist kein RSS- oder Atom-Feed, sondern eine HTML-Seite. Sie nennt ihren Feed: /subscribe {feed}",
    ),
    (
        re.compile(r"(?P<url>\S+) is not an RSS or Atom feed \(it looks like an HTML page\)"),
        "{url} ist kein RSS- oder Atom-Feed, sondern eine HTML-Seite.",
    ),
    (re.compile(r"(?P<url>\S+) is not an RSS or Atom feed"), "{url} ist kein RSS- oder Atom-Feed."),
    (
        re.compile(r"(?P<url>\S+) is a broken feed: no item could be read"),
        "{url} ist ein kaputter Feed: kein Eintrag ließ sich lesen.",
    ),
    (re.compile(r"already subscribed as feed #(?P<id>\d+)"), "Schon abonniert als Feed #{id}."),
    (re.compile(r"not an http\(s\) feed URL"), "Das ist kein http- oder https-Link zu einem Feed."),
]


# The few English reasons that name a Python exception, said as a person would (the CLI keeps the originals).
ENGLISH_REASONS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"cannot fetch (?P<url>\S+): ConnectionRefusedError\b"),
        "{url} cannot be reached: the server refused the connection.",
    ),
    (
        re.compile(r"cannot fetch (?P<url>\S+): (ConnectionResetError|RemoteDisconnected)\b"),
        "{url} cannot be reached: the server closed the connection without an answer.",
    ),
]


def reason_text(reason: str, language: str, about: str = "article") -> str:
    """Why something was not added (``about`` "article") or why a feed failed (``about`` "feed"), in the
    user's language (the English reasons pass unchanged, but for a Python exception's name)."""
    if language != "de":
        for pattern, text in ENGLISH_REASONS:
            match = pattern.match(reason)
            if match:
                return text.format(**match.groupdict())
        return reason
    patterns = GERMAN_FEED_REASONS + GERMAN_REASONS if about == "feed" else GERMAN_REASONS
    for pattern, text in patterns:
        match = pattern.search(reason)
        if match:
            return text.format(**match.groupdict())
    if about == "feed":
        return f"Der Feed ließ sich nicht lesen (Meldung: {reason})."
    return f"Der Text ließ sich nicht verarbeiten (Meldung: {reason})."


def say(key: str, language: str, **fields: object) -> str:
    language = language if language in TEXTS[key] else "en"
    if "title" in fields:  # in quotation marks, but not in marks a title like „Wir …“: Bilanz already has
        fields["title"] = quoted(str(fields["title"]), language)
    text = TEXTS[key][language]
    return text.format(**fields) if fields else text


def shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a mark that it was cut: a bare cut reads as a typo
    ("… mit Ernteausfälle"). Trailing space before the mark goes, so it never stands alone ("Fähre …")."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def ui_language(code: str | None) -> str:
    """German for German-speaking users, English for everyone else."""
    return "de" if (code or "").lower().startswith("de") else "en"
