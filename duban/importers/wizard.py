"""The profile wizard: a draft profile for an unknown export, from its header and a sample of rows.

``draft_profile(path)`` reads the header and up to ``sample`` rows (CSV, its delimiter found by
``csv.Sniffer``; or a JSON array of records) and guesses: the id column (named like an id, unique
in the sample), the time columns and their formats (every sample value must parse; a day/month
order that the sample cannot settle is flagged), which time is the report, the deadline and the
close (by name), the status column and what its values mean (by keyword), the department, unit,
category, area, source, label and coordinate columns (by name), and the time zone (``--zone``;
else the offset written in the times; else the nearest of a few reference cities to the sample's
coordinates). It writes YAML with a comment on every guess; ``TODO`` marks what it could not decide,
and the columns it could not place are listed at the end. ``duban import-report --profile-file``
on the draft then says what still fails.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import median

from duban.errors import ImportRowError
from duban.importers.sources import json_records, open_text
from duban.importers.times import has_time

SAMPLE = 2000
BLANK_SPELLINGS = frozenset({"-", "--", "—", "/", "n/a", "na", "null", "none", "nil", "(null)", "无"})
"""Values that exports write for "nothing": the draft lists those met as ``blank_values``."""
FORMATS = (
    "iso", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%Y%m%d%H%M%S", "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M", "%d %b %Y %H:%M", "%b %d %Y %I:%M %p", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d",
    "%d.%m.%Y", "%Y年%m月%d日",
)  # fmt: skip
"""Time formats the wizard tries, most specific first (``iso``: ``datetime.fromisoformat``)."""

ROLES: dict[str, tuple[str, ...]] = {
    "reported_at": (
        "open",
        "creat",
        "request",
        "report",
        "receiv",
        "submit",
        "start",
        "受理",
        "上报",
        "发现",
    ),
    "deadline": ("target", "due", "deadline", "expect", "sla", "service", "期限", "截止"),
    "closed_at": ("close", "resolv", "complet", "finish", "done", "end", "办结", "结案"),
    "id": ("id", "number", "no", "num", "key", "ticket", "case", "编号", "工单"),
    "status": ("status", "state", "状态"),
    "department": ("department", "dept", "agency", "owner", "responsible", "部门", "责任单位"),
    "unit": ("queue", "assign", "unit", "team", "division", "crew", "处理单位", "班组"),
    "category": ("type", "category", "service", "subject", "problem", "kind", "issue", "类别", "类型"),
    "category_group": ("reason", "group", "class", "大类"),
    "town": ("neighborhood", "neighbourhood", "town", "district", "borough", "街道", "镇"),
    "community": ("ward", "community", "council", "subdistrict", "社区", "村"),
    "grid": ("precinct", "grid", "block", "beat", "网格"),
    "source": ("source", "channel", "origin", "来源", "渠道"),
    "label": ("ontime", "on_time", "on time", "timeliness", "sla_status", "超期"),
    "lat": ("lat", "latitude", "纬度"),
    "long": ("lon", "long", "lng", "longitude", "经度"),
    "address": ("address", "location", "street", "地址"),
}
"""Words in a column's name that suggest its role (compared case-folded, as substrings)."""

STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "closed": (
        "closed",
        "close",
        "resolved",
        "complete",
        "done",
        "fixed",
        "finished",
        "办结",
        "完成",
        "结案",
    ),
    "cancelled": ("cancel", "void", "withdrawn", "duplicate", "invalid", "rejected", "撤销", "作废"),
    "referred_out": ("refer", "transfer", "转办"),
    "open": ("open", "new", "pending", "assigned", "progress", "received", "待", "处理中", "受理"),
}
LABEL_WORDS: dict[str, tuple[str, ...]] = {
    "overdue": ("overdue", "late", "breach", "missed", "超期"),
    "on_time": ("ontime", "on time", "on_time", "met", "timely", "按期"),
}
CITIES: tuple[tuple[str, float, float], ...] = (
    ("America/New_York", 40.7, -74.0), ("America/Chicago", 41.9, -87.6), ("America/Denver", 39.7, -105.0),
    ("America/Phoenix", 33.4, -112.1), ("America/Los_Angeles", 34.1, -118.2),
    ("America/Anchorage", 61.2, -149.9), ("Pacific/Honolulu", 21.3, -157.9),
    ("America/Toronto", 43.7, -79.4), ("America/Vancouver", 49.3, -123.1),
    ("America/Mexico_City", 19.4, -99.1), ("America/Sao_Paulo", -23.5, -46.6),
    ("Europe/London", 51.5, -0.1), ("Europe/Paris", 48.9, 2.4), ("Europe/Berlin", 52.5, 13.4),
    ("Europe/Madrid", 40.4, -3.7), ("Europe/Rome", 41.9, 12.5), ("Europe/Warsaw", 52.2, 21.0),
    ("Europe/Helsinki", 60.2, 24.9), ("Europe/Moscow", 55.8, 37.6), ("Europe/Istanbul", 41.0, 29.0),
    ("Africa/Cairo", 30.0, 31.2), ("Africa/Lagos", 6.5, 3.4), ("Africa/Johannesburg", -26.2, 28.0),
    ("Asia/Dubai", 25.2, 55.3), ("Asia/Kolkata", 19.1, 72.9), ("Asia/Bangkok", 13.8, 100.5),
    ("Asia/Shanghai", 31.2, 121.5), ("Asia/Urumqi", 43.8, 87.6), ("Asia/Hong_Kong", 22.3, 114.2),
    ("Asia/Taipei", 25.0, 121.6), ("Asia/Seoul", 37.6, 127.0), ("Asia/Tokyo", 35.7, 139.7),
    ("Asia/Singapore", 1.35, 103.8), ("Australia/Sydney", -33.9, 151.2), ("Australia/Perth", -31.95, 115.9),
    ("Pacific/Auckland", -36.8, 174.8),
)  # fmt: skip
"""Reference cities for a zone hint from coordinates: the nearest is suggested, to be checked."""


@dataclass
class Column:
    """What the sample shows of one column."""

    name: str
    values: list[str] = field(default_factory=list)  # non-blank sample values
    blanks: int = 0
    spelled_blank: set[str] = field(default_factory=set)  # blank spellings met (n/a, -)
    time_format: str | None = None
    ambiguous: bool = False
    offsets: bool = False


def _read_sample(path: Path, sample: int) -> tuple[str, str, list[Column]]:
    """(format, delimiter, columns) of the file's header and first ``sample`` records."""
    with open_text(path, "utf-8-sig", None, "export") as handle:
        head = handle.read(65536)
    if head.lstrip().startswith("["):
        with open_text(path, "utf-8-sig", None, "export") as handle:
            records = [r for _, r in zip(range(sample), json_records(handle, path), strict=False)]
        good = [r for _, r in records if isinstance(r, dict)]
        names = list(dict.fromkeys(k for r in good for k in r))
        columns = [Column(n) for n in names]
        for record in good:
            for column in columns:
                value = record.get(column.name)
                _note(column, value if isinstance(value, str) else None if value is None else str(value))
        return "json", ",", columns
    try:
        dialect = csv.Sniffer().sniff(head.split("\n", 1)[0] + "\n", delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    with open_text(path, "utf-8-sig", None, "export") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise ImportRowError("(header)", f"{path}: no header line to draft a profile from")
        columns = [Column(n.strip()) for n in header]
        for _, row in zip(range(sample), reader, strict=False):
            for column, cell in zip(columns, row, strict=False):
                _note(column, cell)
    return "csv", delimiter, columns


def _note(column: Column, value: str | None) -> None:
    if value is None or not value.strip():
        column.blanks += 1
    elif value.strip().casefold() in BLANK_SPELLINGS:
        column.blanks += 1
        column.spelled_blank.add(value.strip().casefold())
    else:
        column.values.append(value.strip())


def _parses(value: str, fmt: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if fmt == "iso" else datetime.strptime(value, fmt)
    except ValueError:
        return None


def _find_format(column: Column) -> None:
    if not column.values or sum(c.isdigit() for c in column.values[0]) < 4:
        return
    fits = [f for f in FORMATS if all(_parses(v, f) is not None for v in column.values)]
    if not fits:
        return
    column.time_format = fits[0]
    day_first = {f.replace("%d", "D").replace("%m", "%d").replace("D", "%m") for f in fits}
    column.ambiguous = any(f in fits for f in day_first if f != fits[0]) and fits[0] != "iso"
    column.offsets = fits[0] == "iso" and all(_parses(v, "iso").tzinfo is not None for v in column.values)  # type: ignore[union-attr]


def _words(name: str) -> str:
    return re.sub(r"[\s_\-./]+", " ", name.casefold())


def _score(name: str, role: str) -> tuple[int, int]:
    """How well a column's name suggests ``role``: (4 the whole name is a word of it, 3 a word of
    the name is, 2 a long word is inside the name, 0 none; minus the word's rank in ``ROLES``)."""
    text = _words(name)
    tokens = set(text.split())
    best = (0, 0)
    for rank, word in enumerate(ROLES[role]):
        if text == word:
            best = max(best, (4, -rank))
        elif word in tokens:
            best = max(best, (3, -rank))
        elif word in text and (len(word) > 3 or not word.isascii()):
            best = max(best, (2, -rank))
    return best


def _pick(columns: list[Column], role: str, taken: set[str], ok: object = None) -> Column | None:
    ranked = [(_score(c.name, role), -i, c) for i, c in enumerate(columns) if c.name not in taken]
    ranked = [r for r in ranked if r[0][0] > 0 and (ok is None or ok(r[2]))]  # type: ignore[operator]
    if not ranked:
        return None
    chosen = max(ranked, key=lambda r: (r[0], r[1]))[2]
    taken.add(chosen.name)
    return chosen


def _meaning(value: str, words: dict[str, tuple[str, ...]]) -> str | None:
    text = _words(value)
    for meaning, keys in words.items():
        if any(k in text for k in keys):
            return meaning
    return None


def _zone(
    columns: list[Column], lat: Column | None, long: Column | None, zone: str | None
) -> tuple[str, str]:
    if zone:
        return zone, "given with --zone"
    if lat is not None and long is not None:
        try:
            y = median(float(v) for v in lat.values if float(v) != 0)
            x = median(float(v) for v in long.values if float(v) != 0)
        except (ValueError, TypeError, ArithmeticError):
            y = x = math.nan
        if math.isfinite(y) and math.isfinite(x):
            name = min(CITIES, key=lambda c: (c[1] - y) ** 2 + ((c[2] - x) * math.cos(math.radians(y))) ** 2)[
                0
            ]
            return (
                name,
                f"TODO check: the nearest reference city to the sample's coordinates ({y:.2f}, {x:.2f})",
            )
    if any(c.offsets for c in columns):
        return "UTC", "TODO set the area's IANA zone: the times carry offsets, which do not name it"
    return "UTC", "TODO set the area's IANA zone (e.g. Asia/Shanghai); the sample gives no hint"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def draft_profile(path: Path, name: str = "draft", zone: str | None = None, sample: int = SAMPLE) -> str:
    """A draft profile for the export at ``path``, as commented YAML text (see the module docstring).

    Args:
        path: the export (CSV, or a JSON array of records).
        name: the profile's name.
        zone: the area's IANA zone, when the user knows it.
        sample: how many records to read (at most).

    Raises:
        FileNotFoundError: no such file.
        ImportRowError: no header to draft from, or not text.
    """
    fmt, delimiter, columns = _read_sample(Path(path), sample)
    for column in columns:
        _find_format(column)
    taken: set[str] = set()
    times = [c for c in columns if c.time_format]
    roles: dict[str, Column | None] = {}
    for role in ("closed_at", "deadline", "reported_at"):
        roles[role] = _pick(times, role, taken)
    if roles["reported_at"] is None and (rest := [c for c in times if c.name not in taken]):
        roles["reported_at"] = rest[0]
        taken.add(rest[0].name)
    size = max((len(c.values) + c.blanks for c in columns), default=0)

    def unique(c: Column) -> bool:
        return bool(c.values) and c.blanks == 0 and len(set(c.values)) == len(c.values)

    roles["id"] = _pick(columns, "id", taken, unique) or next(
        (c for c in columns if unique(c) and c.name not in taken), None
    )
    if roles["id"] is not None:
        taken.add(roles["id"].name)
    # the label before the status: an on-time label column is often named ..._Status
    roles["label"] = _pick(columns, "label", taken, lambda c: 0 < len(set(c.values)) <= 10)
    roles["status"] = _pick(
        columns, "status", taken,
        lambda c: 0 < len(set(c.values)) <= 30 and any(_meaning(v, STATUS_WORDS) for v in c.values),
    )  # fmt: skip

    def numeric(c: Column) -> bool:
        try:
            return bool(c.values) and all(math.isfinite(float(v)) for v in c.values)
        except ValueError:
            return False

    roles["lat"] = _pick(columns, "lat", taken, numeric)
    roles["long"] = _pick(columns, "long", taken, numeric)
    for role in (
        "department",
        "unit",
        "category",
        "category_group",
        "town",
        "community",
        "grid",
        "source",
        "address",
    ):
        roles[role] = _pick(columns, role, taken)
    area_zone, zone_note = _zone(columns, roles["lat"], roles["long"], zone)
    out = [
        f"# Draft profile for {Path(path).name}, by duban profile draft from {size} sample records.",
        "# Check every guess; TODO marks what the wizard could not decide. Then run:",
        f"#   duban import-report {Path(path).name} --profile-file <this file>",
        f"name: {name}",
        f"format: {fmt}",
    ]
    if fmt == "csv" and delimiter != ",":
        out.append(f"delimiter: {_q(delimiter)}")
    out.append(f"zone: {area_zone}   # {zone_note}")
    spelled = sorted(set().union(*(c.spelled_blank for c in columns)))
    if spelled:
        out.append(
            f'blank_values: ["", {", ".join(_q(v) for v in spelled)}]   # met in the sample for nothing'
        )
    ident = roles["id"]
    out.append(
        f"id: {_q(ident.name)}   # unique in the sample"
        if ident
        else 'id: "TODO"   # TODO no column is unique in the sample: name the id column'
    )
    out.append("fields:")
    category = roles["category"]
    if category:
        out.append(f"  category: {_q(category.name)}   # from the name")
    else:
        out.append(
            '  category: {constant: "(uncategorised)"}   # TODO name the column of the problem\'s category'
        )
    for role in ("category_group", "department", "unit", "source", "town", "community", "grid", "address"):
        found = roles[role]
        if found:
            out.append(f"  {role}: {_q(found.name)}   # from the name")
    out.append("times:")
    used = Counter(
        c.time_format
        for c in (roles["reported_at"], roles["deadline"], roles["closed_at"])
        if c and c.time_format
    )
    formats = [f for f, _ in used.most_common()] or ["iso"]
    out.append(
        f"  formats: [{', '.join(_q(f) for f in formats)}]   # every sample value of the time columns parses"
    )
    for role in ("reported_at", "deadline", "closed_at"):
        found = roles[role]
        if found is None:
            note = "TODO name the column of the report time" if role == "reported_at" else "none found"
            if role == "reported_at":
                out.append(f'  {role}: "TODO"   # {note}')
            else:
                out.append(f"  # {role}: none found")
            continue
        extra = "; TODO check the day/month order: the sample cannot tell" if found.ambiguous else ""
        out.append(f"  {role}: {_q(found.name)}   # written {found.time_format}{extra}")
    deadline = roles["deadline"]
    if deadline and deadline.time_format and not has_time(deadline.time_format):
        out.append("  date_only: end_of_day   # deadlines are dates: the end of that local day")
    elif deadline and deadline.values:
        midnight = [_parses(v, deadline.time_format or "iso") for v in deadline.values]
        share = sum(1 for d in midnight if d is not None and not (d.hour or d.minute or d.second)) / len(
            midnight
        )
        if share >= 0.5:
            note = f"{share:.0%} of the sample deadlines are at midnight, as if dates were written as times"
            out.append(f"  midnight_is_date_only: true   # TODO check: {note} (end of that local day)")
    status = roles["status"]
    if status:
        out.append("status:")
        out.append(f"  column: {_q(status.name)}")
        out.append("  values:")
        unplaced = []
        for value, count in Counter(status.values).most_common():
            meaning = _meaning(value, STATUS_WORDS)
            if meaning:
                out.append(f"    {_q(value)}: {meaning}   # {count} in the sample")
            else:
                unplaced.append(value)
        for value in unplaced:
            ask = "TODO open, closed, cancelled or referred_out? (rows with it are rejected)"
            out.append(f"    # {_q(value)}: {ask}")
    else:
        out.append("# status: none found: an item with a close time counts as closed, else open")
    label = roles["label"]
    if label:
        out.append("label:")
        out.append(f"  column: {_q(label.name)}")
        out.append("  values:")
        for value in sorted(set(label.values)):
            meaning = _meaning(value, LABEL_WORDS)
            out.append(
                f"    {_q(value)}: {meaning or 'none'}"
                + ("" if meaning else "   # TODO on_time, overdue or none?")
            )
    if roles["lat"] and roles["long"]:
        lat, long = _q(roles["lat"].name), _q(roles["long"].name)
        out.append(f"location: {{lat: {lat}, long: {long}, zero_is_missing: true}}")
    unplaced = [c.name for c in columns if c.name not in taken and c.name]
    if unplaced:
        out.append("# Columns not placed (map any that belong to an item field): " + ", ".join(unplaced))
    return "\n".join(out) + "\n"
