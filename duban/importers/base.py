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


@dataclass(frozen=True)
class ImportedCase:
    """One case record mapped onto a supervision item.

    All datetimes are timezone-aware UTC. ``deadline`` is the city's own deadline (Boston
    ``TARGET_DT``; LA ``ServiceDate``, a date-only value meaning the end of that local day) or ``None``
    when the row has none. ``row_number`` is the 1-based line number in the file counting the header as
    line 1 (so the first data row is 2), as a spreadsheet shows it.
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


@dataclass(frozen=True)
class RejectedRow:
    """A row that could not become an item: its 1-based line number, the column and the reason."""

    row_number: int
    field: str
    reason: str


@dataclass
class ImportResult:
    """Everything a profile read from one file: the items, the rejected rows, and row counts."""

    profile: str
    cases: list[ImportedCase] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    rows_read: int = 0
