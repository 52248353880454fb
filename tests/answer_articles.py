"""Small invented news articles (German and English) for the answering tests; places and people are fictional."""

from __future__ import annotations

from index.extract import Document

FERRY = Document(
    title="Neue Elektrofähre für den Kellersee",
    url="https://example.org/kellersee-faehre",
    text=(
        "Auf dem Kellersee verkehrt ab dem 3. Mai eine neue Elektrofähre zwischen Seedorf und Hollwig. "
        "Das Schiff bietet Platz für 120 Fahrgäste und 40 Fahrräder.\n\n"
        "Die Fähre hat 4,2 Millionen Euro gekostet, davon trägt das Land zwei Drittel. "
        "Geladen wird der Akku nachts am Anleger in Seedorf mit Strom aus der eigenen Solaranlage.\n\n"
        "Bürgermeisterin Hanna Roth sagte bei der Taufe, die Fähre erspare vielen Pendlern den Umweg "
        "über die Bundesstraße. Kritik kam vom Fischereiverein, der um die Laichplätze im Schilf fürchtet."
    ),
)

POOL = Document(
    title="Hallenbad Ostheim schließt für zwei Jahre",
    url="https://example.org/hallenbad-ostheim",
    text=(
        "Das Hallenbad in Ostheim schließt am 1. September für eine Sanierung, die zwei Jahre dauern soll. "
        "Die Schwimmvereine weichen in dieser Zeit in das Nachbarbad in Wendelsheim aus.\n\n"
        "Die Sanierung wird nach Angaben der Stadt rund 9,8 Millionen Euro kosten. "
        "Erneuert werden das Dach, die Lüftung und die gesamte Badewassertechnik.\n\n"
        "Bürgermeisterin Petra Lang sagte, ein Neubau wäre noch teurer geworden. "
        "Der Förderverein sammelt Spenden für ein neues Kinderbecken."
    ),
)

LIBRARY = Document(
    title="Brackenford library extends its opening hours",
    url="https://example.org/brackenford-library",
    text=(
        "Brackenford Central Library will open on Sundays from 2 March, the town council announced. "
        "The library will be open from 11 am to 5 pm on Sundays.\n\n"
        "Who pays\n\n"  # a subheading: no full stop, must not be glued to the next sentence
        "The extra hours are paid for by a grant of £85,000 from the Westmoor Reading Fund. "
        "Head librarian Oliver Pennick said that students had asked for weekend study space for years.\n\n"
        "The library lends about 210,000 items a year and has 14 staff."
    ),
)

ALL = [FERRY, POOL, LIBRARY]
