"""Shapes shared by all import profiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class CaseStatus(StrEnum):
    """What the export says finally happened to the case."""

    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REFERRED_OUT = "referred_out"


@dataclass(slots=True)  # not frozen: a frozen one takes four times as long to make (bench_import)
class ImportedCase:
    """One case record mapped onto a supervision item.

    All datetimes are timezone-aware UTC. ``deadline`` is the city's own deadline (Boston
    ``TARGET_DT``; LA ``ServiceDate``, a date-only value meaning the end of that local day) or ``None``
    when the row has none. ``row_number`` is the 1-based line number in the file counting the header as
    line 1 (so the first data row is 2), as a spreadsheet shows it; for JSON and XML, the record's
    position from 1. ``city_on_time`` is the city's own label (``None``: none, or ignored on an open
    item). ``district`` is the leader-owned district; ``lat``/``long`` WGS 84 degrees (both or neither);
    ``address`` and ``notes`` (Open311 ``status_notes``) as written.
    """

    item_id: str
    category: str
    category_group: str
    department: str
    unit: str
    town: str
    community: str
    grid: str
    zone: str
    reported_at: datetime
    deadline: datetime | None
    closed_at: datetime | None
    status: CaseStatus
    source: str
    row_number: int
    city_on_time: bool | None = None
    anomalies: tuple[str, ...] = ()
    district: str = ""
    lat: float | None = None
    long: float | None = None
    address: str = ""
    notes: str = ""


@dataclass(frozen=True)
class RejectedRow:
    """A row that could not become an item: its 1-based line number (for JSON and XML, the record's
    position), the column and the reason; ``skipped``: a row the profile skips on purpose."""

    row_number: int
    field: str
    reason: str
    skipped: bool = False


@dataclass
class ImportResult:
    """Everything a profile read from one file: the items, the rejected and the skipped rows, and
    the count of rows read (``rows_read == len(cases) + len(rejected) + len(skipped)``).
    ``has_label``: the profile reads a city label (so a deadline without one is worth reporting)."""

    profile: str
    cases: list[ImportedCase] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    skipped: list[RejectedRow] = field(default_factory=list)
    rows_read: int = 0
    has_label: bool = False
