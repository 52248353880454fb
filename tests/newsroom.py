"""Small original articles about fictional places and people, written for these tests."""

# ruff: noqa: E501 - prose: one paragraph a line

from __future__ import annotations

FERRY = """Neue Elektrofähre verbindet Lindholm und Quernsee

Seit dem 3. Mai pendelt die Elektrofähre „Möwe II“ im 20-Minuten-Takt zwischen Lindholm und Quernsee. Die Fähre bietet Platz für 180 Fahrgäste und 40 Fahrräder und ersetzt das alte Dieselschiff aus dem Jahr 1979.

Der Bau der Möwe II kostete 9,2 Millionen Euro, davon übernahm das Land 6 Millionen Euro. Geladen werden die Akkus an beiden Anlegern mit Strom aus der neuen Solaranlage am Hafen Lindholm.

Kapitänin Jorinde Hasselbrink lobte die ruhige Fahrt: „Man hört nur noch das Wasser.“ Im ersten Monat nutzten bereits 21.000 Menschen die Verbindung.
"""

SOLAR = """Harbourton council approves rooftop solar scheme for schools

Harbourton council has approved a plan to fit 1,240 solar panels on the roofs of 31 schools. The scheme will cost £3.8 million and should be finished by October next year.

Energy officer Priya Castellane, who leads the project, said the panels would cover about a third of the schools' electricity use. Savings on energy bills are expected to repay the cost within eleven years.

Parents at Millbrook Primary had campaigned for the scheme for two years. The first installations begin at Millbrook and Eastgate Academy in the spring.
"""

LIBRARY_HTML = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><title>Stadtbibliothek Wernau öffnet künftig sonntags</title></head>
<body>
<nav><a href="/">Start</a> | <a href="/lokales">Lokales</a></nav>
<article>
<h1>Stadtbibliothek Wernau öffnet künftig sonntags</h1>
<p>Die Stadtbibliothek Wernau öffnet ab dem 1. Juni auch am Sonntag, und zwar von 10 bis 16 Uhr.
Der Gemeinderat hat die längeren Öffnungszeiten am Dienstagabend einstimmig beschlossen.</p>
<p>Für den Sonntagsbetrieb stellt die Stadt zwei zusätzliche Fachkräfte ein. Die Mehrkosten von
rund 85.000 Euro im Jahr trägt zum Teil ein Förderprogramm des Landes für offene Bibliotheken.</p>
<p>Bibliotheksleiterin Henrike Ostermann rechnet mit vielen Familien: „Am Sonntag haben Eltern und
Kinder endlich gemeinsam Zeit zum Stöbern.“ Geplant sind Vorlesestunden und ein Spieleverleih.</p>
<p>Die Bibliothek zählt derzeit 4.300 aktive Leserinnen und Leser und verleiht jährlich rund
160.000 Medien. Der Lesesaal wird im Herbst zusätzlich um eine ruhige Lernzone erweitert.</p>
</article>
<footer>© Wernauer Nachrichten</footer>
</body></html>
"""

POOL_TXT = """Birkhain saniert das Freibad am Mühlteich

Die Gemeinde Birkhain saniert ihr Freibad am Mühlteich für 2,1 Millionen Euro. Das Becken erhält eine Edelstahlauskleidung, außerdem entstehen ein neues Kinderbecken und barrierefreie Umkleiden.

Bürgermeister Anselm Krügel sagte, das Bad solle zur Saison im Mai wieder öffnen. Während der Bauzeit können Schwimmerinnen und Schwimmer das Hallenbad in Tannroda zum ermäßigten Preis nutzen.
"""

MARKET_TEXT = """Wochenmarkt in Grauwinkel zieht auf den Kirchplatz

Der Wochenmarkt in Grauwinkel findet vom 5. April an jeden Donnerstag auf dem Kirchplatz statt. Bisher standen die 23 Marktstände auf dem Parkplatz an der Stadthalle.

Marktmeisterin Ilka Brodersen erwartet mehr Laufkundschaft in der Altstadt. Für die Händler gibt es am Kirchplatz neue Stromanschlüsse und einen Wasseranschluss.
"""

FORWARDED = """Eulenbrück bekommt einen Trinkwasserbrunnen am Marktplatz

Am Marktplatz von Eulenbrück steht seit Montag ein öffentlicher Trinkwasserbrunnen. Er liefert von April bis Oktober kostenlos gekühltes Leitungswasser und wurde vom Wasserwerk Eulenbrück für 14.000 Euro aufgestellt.
"""

GYM_TXT = """Sturm deckt Turnhalle in Kestenau ab

Ein Sturm hat in der Nacht zum Freitag Teile des Daches der Turnhalle in Kestenau abgerissen. Verletzt wurde niemand, die Halle bleibt aber bis zu den Sommerferien gesperrt.

Der Schulsport findet bis dahin in der Halle des Nachbarorts Pellwitz statt. Die Gemeinde schätzt den Schaden auf rund 400.000 Euro und hofft auf die Gebäudeversicherung.
"""


def add_ferry_and_solar(kb) -> None:
    """The two articles most tests ask about, each with its own URL (so sources carry links)."""
    from index.extract import from_text

    for text, url in ((FERRY, "https://example.org/faehre"), (SOLAR, "https://example.org/solar")):
        doc = from_text(text)
        doc.url = url
        kb.add(doc)
