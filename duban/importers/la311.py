"""Import profile ``la311``: MyLA311 service-request exports, one row per request.

Mapping onto :class:`~duban.importers.base.ImportedCase`: ``item_id`` = ``SRNumber``, ``category`` and
``category_group`` = ``RequestType``, ``department`` = ``Owner``, ``unit`` = ``AssignTo``, ``town`` =
``CD`` as a readable key (``13`` → ``CD 13``), ``community`` = ``NCName``, ``grid`` = ``""`` (the export
has no finer area), ``zone`` = ``Los Angeles``, ``reported_at`` = ``CreatedDate``, ``deadline`` =
``ServiceDate`` (blank: ``None``; midnight: the end of that local day, see :func:`service_deadline`),
``closed_at`` = ``ClosedDate``, ``status`` from ``Status`` (``Closed``, ``Open``, ``Cancelled``,
``Referred Out``), ``source`` = ``RequestSource``, ``city_on_time`` = ``None`` (LA publishes no label).
Empty area values become ``(unknown)``.

All timestamps are America/Los_Angeles wall times written ``12/31/2017 11:59:58 PM``; they are read
with ``fold=0`` (an ambiguous autumn hour is its first, daylight-time occurrence; a skipped spring time
takes the offset in force before the change) and returned as aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import ClassVar
from zoneinfo import ZoneInfo

from duban.errors import ImportRowError
from duban.importers.base import CaseStatus, ImportedCase

LOS_ANGELES = "America/Los_Angeles"
TIMESTAMP_FORMAT = "%m/%d/%Y %I:%M:%S %p"
UNKNOWN_AREA = "(unknown)"

ID_COLUMN = "SRNumber"
REQUIRED_COLUMNS = (
    ID_COLUMN,
    "CreatedDate",
    "ServiceDate",
    "ClosedDate",
    "Status",
    "RequestType",
    "Owner",
    "AssignTo",
    "CD",
    "NCName",
    "RequestSource",
)

_STATUSES = {
    "Closed": CaseStatus.CLOSED,
    "Open": CaseStatus.OPEN,
    "Cancelled": CaseStatus.CANCELLED,
    "Referred Out": CaseStatus.REFERRED_OUT,
}


def end_of_local_day(d: date, zone: str) -> datetime:
    """The last microsecond of local day ``d`` in IANA time zone ``zone`` (23:59:59.999999), as aware UTC.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: if ``zone`` is not a known IANA zone name.
    """
    return datetime.combine(d, time.max, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def local_instant(wall: datetime, zone: str = LOS_ANGELES) -> datetime:
    """Read a naive wall time in ``zone`` (``fold=0`` at DST edges) and return it as aware UTC.

    Raises:
        ValueError: if ``wall`` is already timezone-aware.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive wall time, got {wall.isoformat()}")
    return wall.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)


def service_deadline(wall: datetime, zone: str = LOS_ANGELES) -> datetime:
    """Deadline meant by a ``ServiceDate`` wall time, as aware UTC.

    Exactly midnight (``12:00:00 AM``) is how the export writes a date-only value: it means the end of
    that local day (:func:`end_of_local_day`), not its start. Any other time is used as is.

    Raises:
        ValueError: if ``wall`` is already timezone-aware.
    """
    if wall.tzinfo is None and wall.time() == time(0, 0):
        return end_of_local_day(wall.date(), zone)
    return local_instant(wall, zone)


def district_key(value: str) -> str:
    """Council district as a readable key: ``"13"``, ``"CD13"``, ``"cd 13"`` → ``"CD 13"``.

    Blank → ``(unknown)``; anything else is kept as written.
    """
    text = value.strip()
    if not text:
        return UNKNOWN_AREA
    number = text[2:].strip() if text[:2].upper() == "CD" else text
    return f"CD {int(number)}" if number.isdigit() else text


def _parse(row: Mapping[str, str], column: str) -> datetime | None:
    text = row[column].strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT)
    except ValueError:
        raise ImportRowError(
            column, f"cannot read {text!r} as a date-time (expected MM/DD/YYYY HH:MM:SS AM|PM)"
        ) from None


@dataclass(frozen=True)
class La311Profile:
    """The ``la311`` profile (no options)."""

    name: ClassVar[str] = "la311"
    id_column: ClassVar[str] = ID_COLUMN
    required_columns: ClassVar[tuple[str, ...]] = REQUIRED_COLUMNS

    def map_row(self, row: Mapping[str, str], row_number: int) -> ImportedCase:
        """Map one row (column name → cell text) to a case.

        Anomalies: ``closed_before_reported`` (``ClosedDate`` earlier than ``CreatedDate``; the row is
        kept), ``deadline_before_reported`` (the deadline is earlier than ``CreatedDate``).

        Args:
            row: cells by column name (first occurrence of a duplicated header name).
            row_number: 1-based spreadsheet row number (header = 1), copied into the case.

        Raises:
            ImportRowError: ``field`` names the column: missing ``SRNumber`` or ``CreatedDate``, an
                unreadable timestamp, an unknown ``Status``.
        """
        item_id = row[ID_COLUMN].strip()
        if not item_id:
            raise ImportRowError(ID_COLUMN, "required value is missing")
        created = _parse(row, "CreatedDate")
        if created is None:
            raise ImportRowError("CreatedDate", "required value is missing")
        service = _parse(row, "ServiceDate")
        closed = _parse(row, "ClosedDate")
        status_text = row["Status"].strip()
        if status_text not in _STATUSES:
            raise ImportRowError(
                "Status", f"unknown status {status_text!r}; expected one of {', '.join(_STATUSES)}"
            )
        reported_at = local_instant(created)
        deadline = None if service is None else service_deadline(service)
        closed_at = None if closed is None else local_instant(closed)
        anomalies: list[str] = []
        if closed_at is not None and closed_at < reported_at:
            anomalies.append("closed_before_reported")
        if deadline is not None and deadline < reported_at:
            anomalies.append("deadline_before_reported")
        request_type = row["RequestType"].strip()
        return ImportedCase(
            item_id=item_id,
            category=request_type,
            category_group=request_type,
            department=row["Owner"].strip(),
            unit=row["AssignTo"].strip(),
            town=district_key(row["CD"]),
            community=row["NCName"].strip() or UNKNOWN_AREA,
            grid="",
            zone=LOS_ANGELES,
            reported_at=reported_at,
            deadline=deadline,
            closed_at=closed_at,
            status=_STATUSES[status_text],
            source=row["RequestSource"].strip(),
            row_number=row_number,
            anomalies=tuple(anomalies),
        )
