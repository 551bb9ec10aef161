"""Writing the problem ledger (问题台账) the way the office keeps it: a CSV file or an XLSX workbook.

Both writers take the rows of ``projections.ledger.ledger_rows`` (any iterable of ``LedgerRow``),
write them as they come (nothing holds all the rows) to a path or a binary stream, and return how many
rows they wrote. Headers are in Chinese (``"zh-CN"``, the glossary's terms, DOMAIN.md) or English
(``"en"``); so are the stage and light values and yes/no.

Times are shown twice: as wall-clock time in the item's IANA zone (the ``zone`` column) and in UTC.

- CSV (the ``csv`` module): UTF-8 with a byte-order mark (so that Excel reads the Chinese headers),
  ``YYYY-MM-DD HH:MM:SS`` times, days overdue as a decimal text (``3.2``).

In both, a text value that a spreadsheet would read as a formula (one beginning with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return: a name from an integrating system) is prefixed with a single
quote (``duban.spreadsheets.neutralise``, OWASP's advice on CSV injection); numbers, times and
booleans are left as they are.
- XLSX (openpyxl, write-only: rows go to a temporary file, not memory): times are real Excel date-times
  (an Excel cell has no zone: the header says which clock), days overdue and the escalation level
  real numbers, yes/no real booleans; the header row is frozen and the columns have widths.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, inspect

from duban import wiring
from duban.errors import ConfigurationError
from duban.spreadsheets import neutralise
from events.errors import ValidationError
from projections.ledger import LedgerFilter, LedgerRow, ledger_rows

LANGS = ("zh-CN", "en")
FORMATS = ("csv", "xlsx")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
XLSX_TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
XLSX_DAYS_FORMAT = "0.0"

Sink = Path | IO[bytes]
"""Where a writer writes: a file path (created or replaced) or a binary stream (left open)."""


@dataclass(frozen=True)
class Column:
    """A ledger column: its headers, how wide (characters), its kind and how to read it off a row."""

    en: str
    zh: str
    width: float
    kind: str  # "text", "code" (a stage or light, translated), "time", "days", "int", "bool"
    value: Callable[[LedgerRow], Any]


def _local(attr: str) -> Callable[[LedgerRow], datetime | None]:
    return lambda r: r.local(getattr(r, attr))


def _utc(attr: str) -> Callable[[LedgerRow], datetime | None]:
    return lambda r: None if getattr(r, attr) is None else getattr(r, attr).astimezone(UTC)


COLUMNS: tuple[Column, ...] = (
    Column("Item id", "事项编号", 18, "text", lambda r: r.item_id),
    Column("Category", "问题类别", 24, "text", lambda r: r.category),
    Column("Department", "责任部门", 20, "text", lambda r: r.department),
    Column("Unit", "责任单位", 20, "text", lambda r: r.unit),
    Column("District (leader-owned)", "片区", 14, "text", lambda r: r.district),
    Column("Town / sub-district", "镇/街道", 18, "text", lambda r: r.town),
    Column("Community / village", "社区/村", 18, "text", lambda r: r.community),
    Column("Grid", "网格", 12, "text", lambda r: r.grid),
    Column("Supervision order", "督办单", 14, "text", lambda r: r.order_id),
    Column("Stage", "阶段", 12, "code", lambda r: r.stage),
    Column("Light", "亮灯", 8, "code", lambda r: r.light),
    Column("Registered (local)", "立案时间(当地)", 20, "time", _local("registered_at")),
    Column("Registered (UTC)", "立案时间(UTC)", 20, "time", _utc("registered_at")),
    Column("Time zone", "时区", 18, "text", lambda r: r.zone),
    Column("Deadline (local)", "整改时限(当地)", 20, "time", _local("resolution_deadline")),
    Column("Deadline (UTC)", "整改时限(UTC)", 20, "time", _utc("resolution_deadline")),
    Column("Overdue", "是否超期", 9, "bool", lambda r: r.overdue),
    Column("Days overdue", "超期天数", 10, "days", lambda r: r.days_overdue),
    Column("Closed on time", "按期销号", 10, "bool", lambda r: r.on_time),
    Column("Escalation level", "升级督办级别", 10, "int", lambda r: r.escalation_level),
    Column("Extended", "是否延期", 9, "bool", lambda r: r.extended),
    Column("Closed out / withdrawn (local)", "销号/作废时间(当地)", 20, "time", _local("ended_at")),
    Column("Closed out / withdrawn (UTC)", "销号/作废时间(UTC)", 20, "time", _utc("ended_at")),
    Column("Closed out / withdrawn by", "销号/作废人", 18, "text", lambda r: r.ended_by),
    Column("Withdrawal reason", "作废/合并原因", 30, "text", lambda r: r.end_reason),
    Column("Merged into", "合并至", 18, "text", lambda r: r.merged_into),
)
"""The ledger's columns, in order."""

CODES: dict[str, dict[object, str]] = {
    "zh-CN": {
        "registered": "已立案",
        "dispatched": "已派遣",
        "accepted": "已签收",
        "rectified": "已整改",
        "verified": "已核查",
        "closed": "已销号",
        "cancelled": "已作废",
        "merged": "已合并",
        "suspended": "已挂账",
        "green": "绿灯",
        "yellow": "黄灯",
        "red": "红灯",
        True: "是",
        False: "否",
    },
    "en": {True: "yes", False: "no"},
}
"""Stage, light and yes/no values as each language shows them (missing: shown as stored)."""
SHEET_TITLE = {"zh-CN": "问题台账", "en": "Problem ledger"}


def check(fmt: str, lang: str) -> None:
    """Raises ``ValidationError`` (field ``format`` or ``lang``) for an unknown format or language."""
    if fmt not in FORMATS:
        raise ValidationError("format", f"must be csv or xlsx, not {fmt!r}")
    if lang not in LANGS:
        raise ValidationError("lang", f"must be zh-CN or en, not {lang!r}")


def headers(lang: str) -> list[str]:
    """The header row in ``lang`` (``"zh-CN"`` or ``"en"``)."""
    check("csv", lang)
    return [c.zh if lang == "zh-CN" else c.en for c in COLUMNS]


def _text(column: Column, row: LedgerRow, lang: str) -> str:
    value = column.value(row)
    if value is None:
        return ""
    if column.kind == "time":
        return str(value.strftime(TIME_FORMAT))
    if column.kind in ("code", "bool"):
        return neutralise(str(CODES[lang].get(value, value)))
    return neutralise(value) if column.kind == "text" else str(value)


def write_csv(rows: Iterable[LedgerRow], sink: Sink, lang: str = "zh-CN") -> int:
    """Write the header and ``rows`` as CSV (module docstring) to ``sink``; return the row count.

    Raises:
        ValidationError: an unknown ``lang``. OSError: ``sink`` cannot be written.
    """
    names = headers(lang)
    if isinstance(sink, Path):
        with sink.open("wb") as stream:
            return write_csv(rows, stream, lang)
    text = io.TextIOWrapper(sink, encoding="utf-8-sig", newline="", write_through=True)
    try:
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(names)
        count = 0
        for row in rows:
            writer.writerow([_text(c, row, lang) for c in COLUMNS])
            count += 1
        text.flush()
        return count
    finally:
        text.detach()  # leave the caller's stream open


def _cell(column: Column, row: LedgerRow, lang: str) -> Any:
    value = column.value(row)
    if value is None:
        return None
    if column.kind == "time":
        return value.replace(tzinfo=None)  # wall-clock time: an Excel cell holds no zone
    if column.kind == "days":
        return float(value)
    if column.kind == "code":
        return neutralise(str(CODES[lang].get(value, value)))
    return neutralise(value) if column.kind == "text" else value


def write_xlsx(rows: Iterable[LedgerRow], sink: Sink, lang: str = "zh-CN") -> int:
    """Write the header and ``rows`` as an XLSX workbook of one sheet (module docstring) to ``sink``;
    return the row count.

    Raises:
        ValidationError: an unknown ``lang``. OSError: ``sink`` cannot be written.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    names = headers(lang)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(SHEET_TITLE[lang])
    for i, column in enumerate(COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(i)].width = column.width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for name in names:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    formats = {"time": XLSX_TIME_FORMAT, "days": XLSX_DAYS_FORMAT}
    count = 0
    for row in rows:
        values: list[Any] = []
        for column in COLUMNS:
            value = _cell(column, row, lang)
            if value is not None and column.kind in formats:
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = formats[column.kind]
                value = cell
            values.append(value)
        sheet.append(values)
        count += 1
    book.save(sink)
    return count


WRITERS: dict[str, Callable[[Iterable[LedgerRow], Sink, str], int]] = {"csv": write_csv, "xlsx": write_xlsx}


def export_ledger(
    url: str | Engine, flt: LedgerFilter, fmt: str, lang: str, sink: Sink, now: datetime | None = None
) -> int:
    """Stream the ledger of the read models at ``url`` (a database URL or an engine) through
    ``projections.ledger.ledger_rows(flt, now)`` into the ``fmt`` writer (``"csv"`` or ``"xlsx"``);
    return the number of rows written.

    Raises:
        ValidationError: a bad filter (``period``, ``stage``, ``light``), ``format`` or ``lang``.
        ConfigurationError: field ``database_url``: no such database, no read models, read models of
            an older duban, or no event store (it names who closed each item out).
        OSError: ``sink`` cannot be written. sqlalchemy.exc.SQLAlchemyError: the database fails.
    """
    check(fmt, lang)
    flt.check()
    engine = wiring.read_models(url)
    try:
        if not inspect(engine).has_table("event_store"):
            shown = engine.url.render_as_string(hide_password=True)
            raise ConfigurationError(
                f"database_url: {shown} holds read models but no event store (the ledger names who "
                "closed each item out from it)"
            )
        rows = ledger_rows(engine, flt, now)
        try:
            return WRITERS[fmt](rows, sink, lang)
        finally:
            rows.close()
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
