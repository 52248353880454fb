"""Hand-written PDFs for the extraction tests: valid text pages, and hostile ones that inflate."""

from __future__ import annotations

import zlib


def _stream(content: bytes, compress: bool, extra: str = "") -> bytes:
    if compress:
        data = zlib.compress(content, 9)
        return f"<< /Length {len(data)} /Filter /FlateDecode {extra}>>\nstream\n".encode() + data + b"\nendstream"
    return f"<< /Length {len(content)} {extra}>>\nstream\n".encode() + content + b"\nendstream"


def make_pdf(
    pages: list[bytes], *, compress: bool = True, form: bytes | None = None, title: str | None = None
) -> bytes:
    """A minimal PDF: one page per content stream, Helvetica as /F1, optionally a form XObject /X0."""
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    xobject = ""
    if form is not None:
        objects.append(
            _stream(
                form,
                compress,
                "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> ",
            )
        )
        xobject = f"/XObject << /X0 {len(objects)} 0 R >>"
    kids = []
    for content in pages:
        objects.append(_stream(content, compress))
        content_ref = len(objects)
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> {xobject} >> /Contents {content_ref} 0 R >>"
            ).encode()
        )
        kids.append(f"{len(objects)} 0 R")
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    info = ""
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        info = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def text_page(*lines: str) -> bytes:
    """A content stream that shows each line of (ASCII) text on its own line."""
    ops = [b"BT /F1 12 Tf 72 720 Td 14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*".encode("latin-1"))
    ops.append(b"ET")
    return b"\n".join(ops)
