"""A notice as DOCX (python-docx): editable, as offices pass documents on — the red-headed issuer
line, the number, the title, the text, each table as a Word table, the charts as pictures."""

from __future__ import annotations

import io

from docx import Document as new_docx
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor

from duban.documents import charts
from duban.documents.content import Document

RED = RGBColor(0xB7, 0x1C, 0x1C)
FONT = "Noto Serif CJK SC"


def _font(run: object, size: float | None = None, bold: bool = False, colour: RGBColor | None = None) -> None:
    font = run.font  # type: ignore[attr-defined]
    font.name = FONT
    run._element.rPr.rFonts.set(qn("w:eastAsia"), FONT)  # type: ignore[attr-defined]  # CJK glyphs
    if size:
        font.size = Pt(size)
    font.bold = bold
    if colour is not None:
        font.color.rgb = colour


def _centred(
    docx: object, text: str, size: float, bold: bool = False, colour: RGBColor | None = None
) -> None:
    para = docx.add_paragraph()  # type: ignore[attr-defined]
    para.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _font(para.add_run(text), size, bold, colour)


def render_docx(doc: Document) -> bytes:
    """The document as DOCX bytes."""
    docx = new_docx()
    _centred(docx, doc.issuer, 18, True, RED)
    _centred(docx, doc.number, 11)
    _centred(docx, doc.title, 15, True)
    if doc.provisional:
        _centred(docx, doc.provisional, 11, True, RED)
    _font(docx.add_paragraph().add_run(doc.recipients), 11)
    docx.add_heading(doc.labels["summary"], level=2)
    for text in doc.paragraphs:
        _font(docx.add_paragraph().add_run(text), 11)
    if doc.trend:
        docx.add_picture(io.BytesIO(charts.as_png(charts.trend_chart(doc.trend, doc.labels))), width=Pt(440))
    for table in doc.tables:
        if table.key == "trend":
            continue
        docx.add_heading(table.caption, level=2)
        if not table.rows:
            _font(docx.add_paragraph().add_run(doc.labels["none"]), 10)
            continue
        grid = docx.add_table(rows=1 + len(table.rows), cols=len(table.headers))
        grid.style = "Table Grid"
        for j, header in enumerate(table.headers):
            _font(grid.cell(0, j).paragraphs[0].add_run(header), 8, True)
        for i, row in enumerate(table.rows, start=1):
            for j, cell in enumerate(row):
                para = grid.cell(i, j).paragraphs[0]
                if cell.kind in ("int", "rate", "decimal"):
                    para.alignment = WD_ALIGN_PARAGRAPH.RIGHT
                _font(para.add_run(cell.shown()), 8)
        if table.note:
            _font(docx.add_paragraph().add_run(table.note), 8)
        if table.key == "lights" and doc.lights:
            picture = charts.as_png(charts.lights_chart(doc.lights, doc.labels))
            docx.add_picture(io.BytesIO(picture), width=Pt(440))
    docx.add_heading(doc.labels["next_steps"], level=2)
    for text in doc.next_steps:
        _font(docx.add_paragraph().add_run(text), 11)
    closing = docx.add_paragraph()
    closing.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    _font(closing.add_run(f"{doc.signature}\n{doc.date_text}"), 11)
    _font(docx.sections[0].footer.paragraphs[0].add_run(doc.footer), 7)
    out = io.BytesIO()
    docx.save(out)
    return out.getvalue()
