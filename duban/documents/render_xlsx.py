"""A notice as XLSX (openpyxl): a summary sheet, then one sheet per table with real numbers — counts
as integers, rates as fractions shown in percent, scores and days as decimals, movements as signed
integers — never text. Each sheet has a proper name of at most 31 characters, unique in the book
(``content.sheet_name``). Text that a spreadsheet would read as a formula (a unit name beginning
with ``=``, ``+``, ``-`` or ``@``…) is prefixed with a single quote (``duban.spreadsheets``)."""

from __future__ import annotations

import io
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from duban.documents.content import SHEET_CHARS, Cell, Document
from duban.spreadsheets import neutralise

FORMATS = {"rate": "0.00%", "decimal": "0.00", "int": "0", "move": '+0;-0;"="'}


def _value(cell: Cell) -> object:
    if cell.value is None:
        return None
    if cell.kind in ("rate", "decimal"):
        return float(Decimal(str(cell.value)))  # a cell holds a double: exact to far past 0.0001
    if isinstance(cell.value, str):
        return neutralise(cell.value)
    return cell.value


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name (2)``… cut to fit, if the book has a sheet of that name (case-blind)."""
    chosen, n = name, 1
    while chosen.casefold() in used:
        n += 1
        chosen = f"{name[: SHEET_CHARS - len(str(n)) - 3]} ({n})"
    used.add(chosen.casefold())
    return chosen


def render_xlsx(doc: Document) -> bytes:
    """The document as XLSX bytes."""
    book = Workbook()
    summary = book.active
    summary.title = doc.labels["summary"][:SHEET_CHARS]
    used = {summary.title.casefold()}
    for line in (doc.issuer, doc.number, doc.title, doc.provisional, *doc.paragraphs, doc.footer):
        if line:
            summary.append([neutralise(line)])
    summary.column_dimensions["A"].width = 120
    for row in summary.iter_rows():
        row[0].alignment = Alignment(wrap_text=True, vertical="top")
    summary["A3"].font = Font(bold=True, size=13)
    for table in doc.tables:
        sheet = book.create_sheet(_unique(table.sheet or table.key, used))
        sheet.append(table.headers)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            sheet.append([_value(c) for c in row])
            for target, source in zip(sheet[sheet.max_row], row, strict=True):
                if source.kind in FORMATS:
                    target.number_format = FORMATS[source.kind]
        if table.note:
            sheet.append([neutralise(table.note)])
        sheet.freeze_panes = "A2"
        for j, header in enumerate(table.headers, start=1):
            sheet.column_dimensions[get_column_letter(j)].width = max(10, min(40, 2 * len(header) + 4))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
