"""Import profile ``boston311``: Analyze Boston 311 case exports, one row per case.

Mapping onto :class:`~duban.importers.base.ImportedCase`: ``item_id`` = ``CASE_ENQUIRY_ID``,
``category`` = ``TYPE``, ``category_group`` = ``REASON``, ``department`` = ``Department``, ``unit`` =
``QUEUE``, ``town`` = ``neighborhood``, ``community`` = ``ward`` (a bare number such as ``3`` or ``02``
is spelled ``Ward 3`` / ``Ward 2`` like the rest of the column), ``grid`` = ``precinct``, ``zone`` =
``Boston``, ``reported_at`` = ``OPEN_DT``, ``deadline`` = ``TARGET_DT`` (blank: ``None``), ``closed_at`` =
``CLOSED_DT``, ``status`` from ``CASE_STATUS`` (``Closed``/``Open``), ``city_on_time`` from
``OnTime_Status`` (``ONTIME`` True, ``OVERDUE`` False, blank ``None``), ``source`` = ``Source``. Empty
area values become ``(unknown)``. Other columns (zip codes stored as floats, coordinates, the duplicated
``resolution_*`` columns) are not read.

The clock of the timestamp columns is wrong (data README, trap 1); see :func:`unshift_clock`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from duban.errors import ImportRowError
from duban.importers.base import CaseStatus, ImportedCase

NEW_YORK = ZoneInfo("America/New_York")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
UNKNOWN_AREA = "(unknown)"

ID_COLUMN = "CASE_ENQUIRY_ID"
REQUIRED_COLUMNS = (
    ID_COLUMN,
    "OPEN_DT",
    "TARGET_DT",
    "CLOSED_DT",
    "OnTime_Status",
    "CASE_STATUS",
    "TYPE",
    "REASON",
    "QUEUE",
    "Department",
    "neighborhood",
    "ward",
    "precinct",
    "Source",
)

_STATUSES = {"Closed": CaseStatus.CLOSED, "Open": CaseStatus.OPEN}
_LABELS: dict[str, bool | None] = {"ONTIME": True, "OVERDUE": False, "": None}


def unshift_clock(wall: datetime) -> datetime:
    """Turn a Boston timestamp column value into the true instant (aware UTC).

    The export took each true America/New_York wall time ``L``, read it as if it were UTC, and wrote
    that instant in New York time: ``column = L - |UTC offset|``, 4 h earlier in summer (EDT) and 5 h in
    winter (EST). The README states the offset as the one in force at ``L``; the sample shows that it is
    the one in force at the column's own wall time (they differ only within 4-5 h after a DST change:
    rows closed at ``2022-03-13 01:46:05`` and ``2023-11-05 01:56:00`` carry closure texts that settle
    it). So the inverse is: localize the column in America/New_York, take that instant's UTC wall time
    as ``L``, localize ``L`` in America/New_York, convert to UTC.

    DST edges, deterministically: both localizations use ``fold=0``. An ambiguous wall time (the
    repeated hour of the autumn change) is read as its first, daylight-time occurrence (the row closed at
    ``2023-11-05 01:56:00`` confirms this for the column). A wall time that does not exist (the skipped
    spring hour) is read with the offset in force before the change (zoneinfo's ``fold=0`` rule).

    Args:
        wall: a naive datetime as written in ``OPEN_DT``/``TARGET_DT``/``CLOSED_DT``.

    Returns:
        An aware datetime in UTC, to the same precision as ``wall``.

    Raises:
        ValueError: if ``wall`` is already timezone-aware.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive wall time, got {wall.isoformat()}")
    true_local = wall.replace(tzinfo=NEW_YORK, fold=0).astimezone(UTC).replace(tzinfo=None)
    return true_local.replace(tzinfo=NEW_YORK, fold=0).astimezone(UTC)


def local_clock(wall: datetime) -> datetime:
    """Read a naive wall time as America/New_York local time (``fold=0`` at DST edges); aware UTC.

    Raises:
        ValueError: if ``wall`` is already timezone-aware.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive wall time, got {wall.isoformat()}")
    return wall.replace(tzinfo=NEW_YORK, fold=0).astimezone(UTC)


def ward_key(value: str) -> str:
    """Spell a ward as ``Ward N``: ``"3"``/``"03"`` → ``"Ward 3"``; blank → ``(unknown)``; else as is."""
    text = value.strip()
    if not text:
        return UNKNOWN_AREA
    return f"Ward {int(text)}" if text.isdigit() else text


def _area(value: str) -> str:
    return value.strip() or UNKNOWN_AREA


def _required(row: Mapping[str, str], column: str) -> str:
    value = row[column].strip()
    if not value:
        raise ImportRowError(column, "required value is missing")
    return value


@dataclass(frozen=True)
class Boston311Profile:
    """The ``boston311`` profile.

    Attributes:
        clock_shifted_by_utc_offset: when True (default), timestamp columns are corrected with
            :func:`unshift_clock` (trap 1 of the data README); when False they are read as plain
            America/New_York local time (:func:`local_clock`). Either way comparisons between the
            columns (closed vs deadline) come out the same, except within hours of a DST change.
    """

    name: ClassVar[str] = "boston311"
    id_column: ClassVar[str] = ID_COLUMN
    required_columns: ClassVar[tuple[str, ...]] = REQUIRED_COLUMNS
    clock_shifted_by_utc_offset: bool = True

    def _instant(self, row: Mapping[str, str], column: str) -> datetime | None:
        text = row[column].strip()
        if not text:
            return None
        try:
            wall = datetime.strptime(text, TIMESTAMP_FORMAT)
        except ValueError:
            raise ImportRowError(
                column, f"cannot read {text!r} as a date-time (expected YYYY-MM-DD HH:MM:SS)"
            ) from None
        return unshift_clock(wall) if self.clock_shifted_by_utc_offset else local_clock(wall)

    def map_row(self, row: Mapping[str, str], row_number: int) -> ImportedCase:
        """Map one row (column name → cell text) to a case.

        Args:
            row: cells by column name (first occurrence of a duplicated header name).
            row_number: 1-based spreadsheet row number (header = 1), copied into the case.

        Raises:
            ImportRowError: ``field`` names the column: missing id or ``OPEN_DT``, an unreadable
                timestamp, an unknown ``CASE_STATUS`` or ``OnTime_Status``.
        """
        item_id = _required(row, ID_COLUMN)
        reported_at = self._instant(row, "OPEN_DT")
        if reported_at is None:
            raise ImportRowError("OPEN_DT", "required value is missing")
        deadline = self._instant(row, "TARGET_DT")
        closed_at = self._instant(row, "CLOSED_DT")
        status_text = row["CASE_STATUS"].strip()
        if status_text not in _STATUSES:
            raise ImportRowError("CASE_STATUS", f"unknown status {status_text!r}; expected Closed or Open")
        label = row["OnTime_Status"].strip()
        if label not in _LABELS:
            raise ImportRowError(
                "OnTime_Status", f"unknown label {label!r}; expected ONTIME, OVERDUE or blank"
            )
        anomalies: list[str] = []
        if closed_at is not None and closed_at < reported_at:
            anomalies.append("closed_before_reported")
        if deadline is not None and deadline < reported_at:
            anomalies.append("deadline_before_reported")
        return ImportedCase(
            item_id=item_id,
            category=row["TYPE"].strip(),
            category_group=row["REASON"].strip(),
            department=row["Department"].strip(),
            unit=row["QUEUE"].strip(),
            town=_area(row["neighborhood"]),
            community=ward_key(row["ward"]),
            grid=_area(row["precinct"]),
            zone=NEW_YORK.key,
            reported_at=reported_at,
            deadline=deadline,
            closed_at=closed_at,
            status=_STATUSES[status_text],
            source=row["Source"].strip(),
            row_number=row_number,
            city_on_time=_LABELS[label],
            anomalies=tuple(anomalies),
        )
