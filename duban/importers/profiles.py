"""Registry of import profiles and the CSV reading they share.

``load_cases("boston311", path)`` reads a whole export with the stdlib :mod:`csv` reader and returns an
:class:`~duban.importers.base.ImportResult`: every data row either becomes an
:class:`~duban.importers.base.ImportedCase` or a :class:`~duban.importers.base.RejectedRow` naming its
row number, column and reason, so ``rows_read == len(cases) + len(rejected)``; nothing is dropped
silently. Row numbers count CSV records with the header as row 1, as a spreadsheet shows them.

Columns are looked up by name; when the header repeats a name (the Boston sample repeats
``resolution_hours`` and ``resolution_days``), the first occurrence is the one read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from duban.errors import ConfigurationError, ImportRowError
from duban.importers.base import ImportedCase, ImportResult, RejectedRow
from duban.importers.boston311 import Boston311Profile
from duban.importers.la311 import La311Profile

ROW_FIELD = "(row)"


class CsvProfile(Protocol):
    """What a CSV import profile provides (see ``boston311`` and ``la311``)."""

    @property
    def name(self) -> str: ...

    @property
    def id_column(self) -> str: ...

    @property
    def required_columns(self) -> tuple[str, ...]: ...

    def map_row(self, row: Mapping[str, str], row_number: int) -> ImportedCase:
        """Map one row; raise :class:`~duban.errors.ImportRowError` naming the column if it cannot."""
        ...


PROFILES: dict[str, CsvProfile] = {profile.name: profile for profile in (Boston311Profile(), La311Profile())}


def column_index(header: Sequence[str]) -> dict[str, int]:
    """Map each column name (whitespace stripped) to the position of its FIRST occurrence in ``header``."""
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(name.strip(), position)
    return index


def load_cases(profile: str, path: Path) -> ImportResult:
    """Import the export at ``path`` with the registered profile named ``profile``.

    Args:
        profile: a key of :data:`PROFILES` (``"boston311"``, ``"la311"``).
        path: the CSV file (UTF-8, optional BOM).

    Raises:
        ConfigurationError: ``profile`` is unknown; the message lists the known profiles.
        FileNotFoundError: ``path`` does not exist; the message names the profile and the path.
        ImportRowError: the file is empty, lacks a required column, is not UTF-8 text.
    """
    try:
        chosen = PROFILES[profile]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ConfigurationError(f"unknown import profile {profile!r}; known profiles: {known}") from None
    return import_csv(chosen, path)


def import_csv(profile: CsvProfile, path: Path) -> ImportResult:
    """Import the export at ``path`` with a profile object (e.g. ``Boston311Profile(False)``).

    A row is rejected (never dropped) when its column count differs from the header's, the CSV reader
    cannot read it, the profile raises :class:`~duban.errors.ImportRowError` for it, or its item id
    repeats an earlier row's (the later row is rejected, naming the first).

    Raises:
        FileNotFoundError: ``path`` does not exist; the message names the profile and the path.
        ImportRowError: the file is empty, lacks a required column, is not UTF-8 text.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise FileNotFoundError(exc.errno, f"{profile.name} export not found", str(path)) from None
    result = ImportResult(profile=profile.name)
    with handle:
        records = _records(csv.reader(handle), path)
        first = next(records, None)
        header = None if first is None else first[1]
        if not isinstance(header, list) or not header:
            raise ImportRowError("(header)", f"{path}: no readable header line; is this a CSV export?")
        index = column_index(header)
        missing = [column for column in profile.required_columns if column not in index]
        if missing:
            raise ImportRowError(
                missing[0], f"{path}: header lacks {', '.join(missing)}; is this a {profile.name} export?"
            )
        first_rows: dict[str, int] = {}
        for row_number, cells in records:
            result.rows_read += 1
            outcome = _read_row(profile, index, len(header), cells, row_number)
            if isinstance(outcome, RejectedRow):
                result.rejected.append(outcome)
            elif outcome.item_id in first_rows:
                reason = f"duplicate item id {outcome.item_id!r}, first on row {first_rows[outcome.item_id]}"
                result.rejected.append(RejectedRow(row_number, profile.id_column, reason))
            else:
                first_rows[outcome.item_id] = row_number
                result.cases.append(outcome)
    return result


def _records(reader: Iterator[list[str]], path: Path) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """Yield (row number, cells or the csv.Error that row raised); row 1 is the header."""
    row_number = 0
    while True:
        row_number += 1
        try:
            cells: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            cells = exc
        except UnicodeDecodeError as exc:
            reason = f"{path}: not UTF-8 text near row {row_number}: {exc}"
            raise ImportRowError("(encoding)", reason) from None
        yield row_number, cells


def _read_row(
    profile: CsvProfile,
    index: Mapping[str, int],
    width: int,
    cells: list[str] | csv.Error,
    row_number: int,
) -> ImportedCase | RejectedRow:
    if isinstance(cells, csv.Error):
        return RejectedRow(row_number, ROW_FIELD, f"unreadable CSV record: {cells}")
    if len(cells) != width:
        return RejectedRow(row_number, ROW_FIELD, f"expected {width} columns, found {len(cells)}")
    row = {name: cells[position] for name, position in index.items()}
    try:
        return profile.map_row(row, row_number)
    except ImportRowError as exc:
        return RejectedRow(row_number, exc.field, exc.reason)
