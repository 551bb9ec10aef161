"""A notice laid out as a document, in one language: the text, the tables and the charts' data that
every format renders (DOCX, XLSX, HTML, PDF), so the four carry the same numbers.

Cells keep their type: ``int`` counts, ``rate`` shares (a decimal string such as ``"0.9451"``,
printed as ``94.51%``; XLSX stores the number with a percentage format), ``decimal`` scores and
days, ``move`` a rank's movement (an integer printed ``+2``, ``-1`` or ``=``), ``text`` anything else.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from duban.documents.template import LABELS, Template
from projections.interviews import reason_facts
from projections.notices import Notice

SECTIONS_BY_KIND = {
    "weekly": ("department", "overdue_open", "closed_late", "repeat", "lights"),
    "half-monthly": (
        "department",
        "town",
        "district",
        "overdue_open",
        "due_soon",
        "orders",
        "repeat",
        "lights",
    ),
    "monthly": (
        "department",
        "town",
        "community",
        "district",
        "overdue_open",
        "closed_late",
        "repeat",
        "interviews",
        "lights",
    ),
}
"""Which tables each kind of notice carries, in order (the ranking levels, then the findings)."""


@dataclass(frozen=True)
class Cell:
    """A table cell: its value and kind (module docstring)."""

    value: Any
    kind: str = "text"

    def shown(self) -> str:
        """The cell as printed (rates in percent to 0.01)."""
        if self.value is None:
            return "—"
        if self.kind == "rate":
            return f"{Decimal(str(self.value)) * 100:.2f}%"
        if self.kind == "move":
            return f"{self.value:+d}" if self.value else "="
        return str(self.value)


@dataclass
class Table:
    """A table: ``key`` names it, ``caption`` is its heading, ``sheet`` its XLSX sheet's name (at most
    31 characters: the caption when it fits, else a short name in the same language)."""

    key: str
    caption: str
    headers: list[str]
    rows: list[list[Cell]]
    note: str = ""
    sheet: str = ""


@dataclass
class Document:
    """Everything a rendered notice shows."""

    lang: str
    kind: str
    period: str
    title: str
    number: str
    office: str
    issuer: str
    date_text: str
    recipients: str
    provisional: str
    paragraphs: list[str]
    tables: list[Table]
    trend: list[dict[str, Any]]
    lights: dict[str, dict[str, int]]
    next_steps: list[str]
    signature: str
    footer: str
    labels: dict[str, str] = field(default_factory=dict)


def period_name(period: str, lang: str) -> str:
    """The period in words (``2022年5月``, ``May 2022``)."""
    lab = LABELS[lang]
    year = int(period[:4])
    if "-W" in period:
        return lab["period_weekly"].format(year=year, week=int(period[6:8]))
    month = int(period[5:7])
    names = {"month": month, "month_name": calendar.month_name[month], "year": year}
    if period.endswith(("H1", "H2")):
        return lab["period_half"].format(half=lab["half" + period[-1]], **names)
    return lab["period_month"].format(**names)


def _rate(value: str | None) -> str:
    return "—" if value is None else Cell(value, "rate").shown()


def _movement(points: str | None, lab: dict[str, str]) -> str:
    if points is None:
        return lab["no_previous"]
    number = Decimal(points)
    if number == 0:
        return lab["flat"]
    return lab["up" if number > 0 else "down"].format(points=f"{abs(number):.2f}")


def _ranking_table(level: str, rows: list[dict[str, Any]], lab: dict[str, str]) -> Table:
    headers = [
        lab[h]
        for h in (
            "rank",
            "move",
            "unit",
            "score",
            "band",
            "rectified_of",
            "rectification",
            "on_time_of",
            "on_time",
        )
    ]
    body = []
    for r in rows:
        move = r["movement"]
        rect, on_time = r["rectification"], r["on_time_closure"]
        body.append(
            [
                Cell(r["rank"], "int"),
                Cell(lab["new"]) if move is None else Cell(int(move), "move"),
                Cell(r["unit_key"] or "(none)"),
                Cell(None if r["score"] is None else Decimal(r["score"]), "decimal"),
                Cell(lab.get(f"band_{r['band']}", r["band"] or "")),
                Cell(f"{rect['numerator']}/{rect['denominator']}"),
                Cell(rect["value"], "rate"),
                Cell(f"{on_time['numerator']}/{on_time['denominator']}"),
                Cell(on_time["value"], "rate"),
            ]
        )
    return Table(level, lab["ranking"].format(level=lab[level]), headers, body)


def _items_table(key: str, found: dict[str, Any], days_label: str, lab: dict[str, str], zone: str) -> Table:
    headers = [lab[h] for h in ("item", "category", "department_column", "responsible", "area", "deadline")]
    headers.append(lab[days_label])
    body = []
    for it in found["items"]:
        deadline = it["deadline"][:16].replace("T", " ") if it["deadline"] else "—"
        body.append(
            [
                Cell(it["item_id"]),
                Cell(it["category"]),
                Cell(it["department"]),
                Cell(it["unit"] or "—"),
                Cell(it["town"]),
                Cell(deadline),
                Cell(Decimal(it["days"]), "decimal"),
            ]
        )
    more = int(found["total"]) - len(found["items"])
    return Table(
        key,
        lab[key if key != "overdue_open" else "overdue_items"],
        headers,
        body,
        lab["more"].format(more=more) if more > 0 else "",
    )


SHEET_CHARS = 31
"""The longest name an XLSX sheet may have."""


def sheet_name(table: Table, lab: dict[str, str]) -> str:
    """The XLSX sheet name of ``table``: its caption if it fits in ``SHEET_CHARS`` characters, else
    the short name the labels give it (``sheet_<key>``), with the characters a sheet name may not
    hold (``[]:*?/\\``) replaced by ``-``."""
    name = table.caption if len(table.caption) <= SHEET_CHARS else lab.get(f"sheet_{table.key}", table.key)
    return re.sub(r"[\[\]:*?/\\]", "-", name)[:SHEET_CHARS]


def interview_reason(reason: str, lab: dict[str, str]) -> str:
    """An interview's reason (recorded in English: ``projections.interviews``) in ``lab``'s language:
    recognised and reworded when the labels have the rule's sentence, else as recorded."""
    fact = reason_facts(reason)
    if fact is None or f"reason_{fact['rule']}" not in lab:
        return reason
    if fact["rule"] == "last_place":
        fact["level"] = lab.get(str(fact["level"]), fact["level"])
    if fact["rule"] == "counter_at_least":
        fact["counter"] = lab.get(f"counter_{fact['counter']}", fact["counter"])
    return lab[f"reason_{fact['rule']}"].format(**fact)


def build_document(notice: Notice, template: Template, made_at: datetime) -> Document:
    """The document of ``notice`` in ``template``'s language (``made_at``: when it is made, aware)."""
    lang = template.lang
    lab = LABELS[lang]
    s, f = notice.summary, notice.findings
    name = period_name(notice.period, lang)
    paragraphs = [
        lab["summary_text"].format(
            period=name,
            received=s.received,
            rectified=s.rectified,
            rectification_rate=_rate(s.rectification_rate),
            on_time_rate=_rate(s.on_time_closure_rate),
            closed_on_time=s.closed_on_time,
            closed_with_deadline=s.closed_with_deadline,
            closed_late=s.closed_late,
            overdue_open=s.overdue_open,
        ),
        lab["movement_text"].format(
            rect_move=_movement(s.rectification_movement_points, lab),
            on_time_move=_movement(s.on_time_movement_points, lab),
        ),
    ]
    tables: list[Table] = []
    for section in SECTIONS_BY_KIND[notice.kind]:
        if section in notice.rankings:
            tables.append(_ranking_table(section, notice.rankings[section], lab))
        elif section == "overdue_open":
            tables.append(_items_table("overdue_open", f["overdue_open"], "days_overdue", lab, notice.zone))
        elif section == "closed_late":
            tables.append(_items_table("closed_late", f["closed_late"], "days_late", lab, notice.zone))
        elif section == "due_soon":
            tables.append(_items_table("due_soon", f["due_soon"], "days_left", lab, notice.zone))
        elif section == "repeat":
            rows = [
                [Cell(r["unit_key"]), Cell(r["breaches"], "int"), Cell(r["previous_breaches"], "int")]
                for r in notice.repeat_offenders
            ]
            tables.append(
                Table("repeat", lab["repeat"], [lab["unit"], lab["breaches"], lab["previous_breaches"]], rows)
            )
        elif section == "orders":
            heads = [lab[h] for h in ("order", "items", "closed", "open", "overdue")]
            rows = [
                [Cell(o["order_id"])] + [Cell(o[k], "int") for k in ("items", "closed", "open", "overdue")]
                for o in f["orders"]
            ]
            tables.append(Table("orders", lab["orders"], heads, rows))
        elif section == "interviews":
            rows = [
                [
                    Cell(lab.get(i["level"], i["level"])),
                    Cell(i["unit_key"]),
                    Cell(
                        ("；" if lang == "zh-CN" else "; ").join(
                            interview_reason(reason, lab) for reason in i["reasons"]
                        )
                    ),
                ]
                for i in f.get("interviews", [])
            ]
            tables.append(
                Table("interviews", lab["interviews"], [lab["level"], lab["unit"], lab["reasons"]], rows)
            )
        elif section == "lights":
            heads = [lab[h] for h in ("department_column", "green", "yellow", "red")]
            rows = [
                [Cell(d)] + [Cell(c[k], "int") for k in ("green", "yellow", "red")]
                for d, c in f["lights"].items()
            ]
            tables.append(Table("lights", lab["lights"], heads, rows))
    trend_rows = [
        [Cell(w["week"]), Cell(f"{w['numerator']}/{w['denominator']}"), Cell(w["value"], "rate")]
        for w in f["trend"]
    ]
    tables.append(
        Table("trend", lab["trend"], [lab["week"], lab["rectified_of"], lab["rectification"]], trend_rows)
    )
    for table in tables:
        table.sheet = sheet_name(table, lab)
    zone = ZoneInfo(notice.zone)
    if notice.provisional:
        footer = lab["footer_open"].format(
            cut_off=notice.cut_off.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        )
    else:
        footer = lab["footer_closed"].format(
            frozen_at=notice.cut_off.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
            events_count=notice.events_count,
            events_hash=notice.events_hash,
            version=notice.scorebook_version,
        )
        if notice.seal_root:
            footer += lab["footer_seal"].format(root=notice.seal_root)
    return Document(
        lang=lang,
        kind=notice.kind,
        period=notice.period,
        title=template.titles[notice.kind].format(period=name),
        number=template.document_number(notice.kind, notice.period),
        office=template.office,
        issuer=template.issuer,
        date_text=made_at.astimezone(zone).strftime(lab["date_format"]),
        recipients=template.recipients,
        provisional=lab["provisional"] if notice.provisional else "",
        paragraphs=paragraphs,
        tables=tables,
        trend=list(f["trend"]),
        lights=dict(f["lights"]),
        next_steps=list(template.next_steps[notice.kind]),
        signature=template.signature,
        footer=footer,
        labels=lab,
    )
