"""Import profiles: the built-in ones, user-written ones, and reading an export with one.

Profiles are data (``duban.importers.profile_spec``): ``builtin/boston311.yaml``,
``builtin/la311.yaml`` and ``builtin/open311.yaml`` ship with duban; ``--profile-file`` names
another. :func:`read_outcomes` streams an export (CSV, a JSON array, or Open311 XML) record by record:
each becomes an :class:`~duban.importers.base.ImportedCase`, a rejected row (row number, column,
reason) or a skipped one (the profile's reason), so nothing is dropped silently; a later row
repeating an earlier row's item id is rejected, naming the first. :func:`load_cases` collects them
(``rows_read == cases + rejected + skipped``). Memory stays flat however long the file: records
are read one at a time and the ids seen go to a scratch SQLite file (:class:`SeenIds`) once there
are many.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from duban.errors import ConfigurationError, ImportRowError
from duban.importers.base import ImportedCase, ImportResult, RejectedRow
from duban.importers.mapper import RowMapper, Skipped, wanted_columns
from duban.importers.profile_spec import ProfileSpec, load_profile_file
from duban.importers.sources import (
    Unreadable,
    csv_records,
    json_records,
    load_services,
    open_binary,
    open_text,
    xml_records,
)

BUILTIN = Path(__file__).resolve().parent / "builtin"
ROW_FIELD = "(row)"
BATCH = 1024
MEMORY_IDS = 50_000
"""Ids kept in memory before they move to a scratch SQLite file (about 5 MB of ids)."""

Outcome = ImportedCase | RejectedRow
"""A rejected or a skipped row is a ``RejectedRow``; skipped ones come with ``skipped=True``."""


@cache
def builtin_profiles() -> dict[str, ProfileSpec]:
    """The built-in profiles by name (``builtin/*.yaml``)."""
    found = [load_profile_file(path) for path in sorted(BUILTIN.glob("*.yaml"))]
    return {spec.name: spec for spec in found}


def load_profile(name: str | None = None, file: Path | None = None) -> ProfileSpec:
    """The profile named ``name`` (built in) or written in ``file`` (which wins when both are given).

    Raises:
        ConfigurationError: an unknown name (listing the known ones), or a file that is not a valid
            profile (one line naming the file and the key path).
    """
    if file is not None:
        return load_profile_file(file)
    known = builtin_profiles()
    if name not in known:
        names = ", ".join(sorted(known))
        raise ConfigurationError(
            f"unknown import profile {name!r}; known profiles: {names} (or --profile-file)"
        )
    return known[name]


class SeenIds:
    """The item ids met so far and the row of each, to reject a repeated id naming the first.

    The first ``MEMORY_IDS`` stay in a dict; after that all move to a scratch SQLite file (deleted on
    ``close``), so a million-row file does not hold a million ids in memory.
    """

    def __init__(self, memory_ids: int = MEMORY_IDS) -> None:
        self._memory: dict[str, int] = {}
        self._limit = memory_ids
        self._db: sqlite3.Connection | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def first_rows(self, batch: list[tuple[str, int]]) -> dict[int, int]:
        """For each (id, row) of ``batch`` in order: the row of its id's first occurrence when that
        was earlier (in an earlier batch or earlier in this one); record the new ids."""
        new = dict(reversed(batch))  # each id with its first row in the batch
        known = self._record(new)
        repeats: dict[int, int] = {}
        if known or len(new) < len(batch):
            for item_id, row in batch:
                first = known.get(item_id) or new[item_id]
                if first != row:
                    repeats[row] = first
        return repeats

    def _record(self, new: dict[str, int]) -> dict[str, int]:
        """Record ``new`` (id → first row in this batch); return those recorded before, with
        their rows. On disk, the insert tells whether any was there; only then are they looked up."""
        if self._db is None:
            memory = self._memory
            known = {i: memory[i] for i in new if i in memory}
            memory.update((i, r) for i, r in new.items() if i not in known)
            if len(memory) > self._limit:
                self._spill()
            return known
        inserted = self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", new.items()).rowcount
        if inserted == len(new):
            return {}
        found: dict[str, int] = {}
        ids = list(new)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT id, row FROM seen WHERE id IN ({marks})", part)
            found.update((i, r) for i, r in rows if r != new[i])  # stored by an earlier batch
        return found

    def _spill(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="duban-import-")
        self._db = sqlite3.connect(Path(self._dir.name) / "seen.db")
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4000;"
            "CREATE TABLE seen (id TEXT PRIMARY KEY, row INTEGER NOT NULL) WITHOUT ROWID;"
        )
        self._db.executemany("INSERT INTO seen VALUES (?, ?)", self._memory.items())
        self._memory = {}

    def close(self) -> None:
        """Drop the scratch file."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


@contextmanager
def _records(
    spec: ProfileSpec,
    path: Path,
    services: Mapping[str, Mapping[str, str]] | None,
    progress: Callable[[int], object] | None,
) -> Iterator[tuple[RowMapper, Iterator[tuple[int, Any]]]]:
    """The mapper for the file and its (number, record or Unreadable) pairs, the file open."""
    what = f"{spec.name} export"
    if spec.format == "csv":
        with open_text(path, spec.encoding, progress, what) as handle:
            records = csv_records(handle, path, spec.delimiter)
            first = next(records, None)
            header = None if first is None else first[1]
            if not isinstance(header, list) or not any(cell.strip() for cell in header):
                raise ImportRowError("(header)", f"{path}: no readable header line; is this a CSV export?")
            yield RowMapper(spec, header, services, str(path)), records
        return
    columns = wanted_columns(spec)
    mapper = RowMapper(spec, columns, services, str(path))

    def cells(pairs: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        for number, record in pairs:
            yield number, record if isinstance(record, Unreadable) else [record.get(c) for c in columns]

    if sniff(path, what) == "json":
        with open_text(path, spec.encoding, progress, what) as handle:
            yield mapper, cells(json_records(handle, path))
    else:
        with open_binary(path, progress, what) as raw:
            yield mapper, cells(xml_records(raw, path))


def sniff(path: Path, what: str) -> str:
    """``xml`` when the file's first character (after a byte-order mark and spaces) is ``<``, else
    ``json``: a JSON or XML profile reads either (Open311 endpoints serve both)."""
    with open_binary(path, None, what) as raw:
        head = raw.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return "xml" if head.startswith(b"<") else "json"


def with_zone(spec: ProfileSpec, zone: str | None) -> ProfileSpec:
    """``spec`` with its zone replaced by ``zone`` (checked as the profile's own would be), or as is.

    Raises:
        ConfigurationError: ``zone`` is not an IANA zone.
    """
    if zone is None:
        return spec
    from duban.importers.profile_spec import parse_profile

    return parse_profile({**spec.model_dump(exclude_unset=True), "zone": zone}, "--zone")


def _outcome(mapper: RowMapper, number: int, cells: Any, csv_width: int | None) -> Outcome:
    if isinstance(cells, Unreadable):
        return RejectedRow(number, cells.field, cells.reason)
    if csv_width is not None and len(cells) != csv_width:
        return RejectedRow(number, ROW_FIELD, f"expected {csv_width} columns, found {len(cells)}")
    try:
        mapped = mapper.map(cells, number)
    except ImportRowError as exc:
        return RejectedRow(number, exc.field, exc.reason)
    if isinstance(mapped, Skipped):
        return RejectedRow(number, mapped.field, mapped.reason, skipped=True)
    return mapped


def read_outcomes(
    spec: ProfileSpec,
    path: Path,
    services_path: Path | None = None,
    progress: Callable[[int], object] | None = None,
) -> Iterator[Outcome]:
    """Stream the export at ``path`` read with ``spec``: one outcome per record, in file order.

    Args:
        spec: the profile.
        path: the export (CSV, a JSON array, or Open311 XML, as the profile's ``format`` says).
        services_path: an Open311 ``services.json`` for fields that look services up.
        progress: called with the number of bytes read as the file is read (a progress bar).

    Raises:
        FileNotFoundError: the file does not exist (naming the profile and the path).
        ImportRowError: the file as a whole cannot be read: no header, a column the profile needs
            is missing, not text in the profile's encoding, not a JSON array, forbidden XML.
        ConfigurationError: from the services file.
    """
    services = load_services(services_path) if services_path is not None else None
    seen = SeenIds()
    try:
        batch: list[Outcome] = []
        with _records(spec, path, services, progress) as (mapper, records):
            width = mapper.width if spec.format == "csv" else None
            map_row, append = mapper.map, batch.append
            for number, cells in records:
                if cells.__class__ is list and (width is None or len(cells) == width):
                    try:  # the common case inline: this loop runs once per row of files of millions
                        mapped = map_row(cells, number)
                    except ImportRowError as exc:
                        append(RejectedRow(number, exc.field, exc.reason))
                    else:
                        append(mapped if mapped.__class__ is ImportedCase else _skipped(number, mapped))
                else:
                    append(_outcome(mapper, number, cells, width))
                if len(batch) >= BATCH:
                    _unique(batch, seen, spec)
                    yield from batch
                    batch.clear()
        _unique(batch, seen, spec)
        yield from batch
    finally:
        seen.close()


def _skipped(number: int, skipped: Any) -> RejectedRow:
    return RejectedRow(number, skipped.field, skipped.reason, skipped=True)


def _unique(batch: list[Outcome], seen: SeenIds, spec: ProfileSpec) -> None:
    """Replace, in ``batch``, each case whose item id an earlier row had with its refusal."""
    at = [i for i, o in enumerate(batch) if o.__class__ is ImportedCase]
    repeats = seen.first_rows([(batch[i].item_id, batch[i].row_number) for i in at])  # type: ignore[union-attr]
    if not repeats:
        return
    id_column = spec.id.sources()[0]
    word = "row" if spec.format == "csv" else "record"
    for i in at:
        outcome = batch[i]
        if outcome.row_number in repeats:
            reason = f"duplicate item id {outcome.item_id!r}, first on {word} {repeats[outcome.row_number]}"  # type: ignore[union-attr]
            batch[i] = RejectedRow(outcome.row_number, id_column, reason)


def load_cases(profile: str | ProfileSpec, path: Path, services_path: Path | None = None) -> ImportResult:
    """Import the whole export at ``path`` (see :func:`read_outcomes`) into lists.

    Args:
        profile: a built-in profile's name (``boston311``, ``la311``, ``open311``) or a profile.

    Raises:
        ConfigurationError: an unknown profile name (the message lists the known ones).
        FileNotFoundError, ImportRowError: see :func:`read_outcomes`.
    """
    spec = load_profile(profile) if isinstance(profile, str) else profile
    result = ImportResult(profile=spec.name, has_label=spec.label is not None)
    for outcome in read_outcomes(spec, Path(path), services_path):
        result.rows_read += 1
        if isinstance(outcome, ImportedCase):
            result.cases.append(outcome)
        elif outcome.skipped:
            result.skipped.append(outcome)
        else:
            result.rejected.append(outcome)
    return result
