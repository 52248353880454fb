"""What the bot says, in German and English. Plain text with ``str.format`` fields; no markup.

Markup (bold titles, links) is added by the conversation as spans, so these strings stay safe to
escape and equally usable in Telegram and in the terminal.
"""

from __future__ import annotations

LANGUAGES = ("de", "en")

TEXTS: dict[str, dict[str, str]] = {
    "greeting": {
        "de": "Ich beantworte Fragen zu {count} Artikeln – mit Quellenangaben.",
        "en": "I answer questions about {count} articles – with sources.",
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
    "admin_help": {
        "de": "Für Admins: /add <Link> oder /add mit Titelzeile und Text, /add als Antwort auf eine Nachricht, "
        "ein Dokument (.txt .md .html .pdf) mit der Beschriftung /add; /remove <id>, /list, /stats, /reindex.",
        "en": "For admins: /add <link> or /add with a title line and text, /add as a reply to a message, "
        "a document (.txt .md .html .pdf) with the caption /add; /remove <id>, /list, /stats, /reindex.",
    },
    "sources_label": {"de": "Quellen:", "en": "Sources:"},
    "quote_button": {"de": "Zitat [{n}]", "en": "Quote [{n}]"},
    "article_fallback": {"de": "Artikel #{id}", "en": "article #{id}"},
    "llm_fallback": {
        "de": "(Sprachmodell nicht erreichbar: Antwort aus den Artikeln zitiert)",
        "en": "(language model unavailable: answer quoted from the articles)",
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
    "admins_only": {
        "de": "Das dürfen leider nur die Admins dieses Bots.",
        "en": "Sorry, only this bot's admins can do that.",
    },
    "articles_header": {"de": "Artikel {first}–{last} von {total}", "en": "Articles {first}–{last} of {total}"},
    "no_articles": {
        "de": "Noch keine Artikel. Admins fügen welche mit /add hinzu.",
        "en": "No articles yet. Admins add them with /add.",
    },
    "previous": {"de": "◀ Neuere", "en": "◀ Newer"},
    "next": {"de": "Ältere ▶", "en": "Older ▶"},
    "passages": {"de": "{count} Abschnitte", "en": "{count} passages"},
    "add_usage": {
        "de": "So fügen Sie einen Artikel hinzu: /add <Link>, /add gefolgt von Titelzeile und Text, /add als "
        "Antwort auf eine Nachricht oder ein Dokument mit der Beschriftung /add.",
        "en": "To add an article: /add <link>, /add followed by a title line and the text, /add as a reply "
        "to a message, or a document with the caption /add.",
    },
    "fetching": {"de": "Lade {url} …", "en": "Fetching {url} …"},
    "downloading": {"de": "Lade {name} herunter …", "en": "Downloading {name} …"},
    "indexing": {"de": "Verarbeite „{title}“ …", "en": "Processing “{title}” …"},
    "added": {
        "de": "Hinzugefügt: #{id} „{title}“ ({chunks} Abschnitte).",
        "en": "Added #{id} “{title}” ({chunks} passages).",
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
    "confirm_remove": {"de": "Artikel #{id} „{title}“ entfernen?", "en": "Remove article #{id} “{title}”?"},
    "remove_button": {"de": "🗑 Entfernen", "en": "🗑 Remove"},
    "cancel_button": {"de": "Abbrechen", "en": "Cancel"},
    "removed": {"de": "Entfernt: #{id} „{title}“.", "en": "Removed #{id} “{title}”."},
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
        "de": "Index neu aufgebaut: {vectors} Vektoren ({kind}).",
        "en": "Index rebuilt: {vectors} vectors ({kind}).",
    },
    "busy": {
        "de": "Warte, bis die vorige Admin-Aufgabe fertig ist …",
        "en": "Waiting for the previous admin job to finish …",
    },
    "thanks": {"de": "Danke für die Rückmeldung!", "en": "Thanks for the feedback!"},
    "expired": {"de": "Dieser Knopf ist nicht mehr gültig.", "en": "This button is no longer valid."},
}


def say(key: str, language: str, **fields: object) -> str:
    text = TEXTS[key].get(language) or TEXTS[key]["en"]
    return text.format(**fields) if fields else text


def ui_language(code: str | None) -> str:
    """German for German-speaking users, English for everyone else."""
    return "de" if (code or "").lower().startswith("de") else "en"
