"""A profile compiled against a file's header: one record in, one ``ImportedCase`` out.

``RowMapper(spec, header)`` resolves every column the profile names to its position in the header
(names compared stripped and case-folded; a repeated name is read at its first position), once;
``map`` then reads a record (a list of cells, positions as in the header) into an
:class:`~duban.importers.base.ImportedCase`, or raises :class:`~duban.errors.ImportRowError` naming
the column and the reason, or returns a :class:`Skipped` for a row the profile skips. Text values
must be text (a JSON number where text belongs is refused) and within the bounds of
``events.bounds`` (ids 128 characters, names 128, addresses 256, notes 4,000; no control characters).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from duban.errors import ImportRowError
from duban.importers.base import CaseStatus, ImportedCase
from duban.importers.profile_spec import AREA_FIELDS, FieldSpec, ProfileSpec
from duban.importers.times import TimeReader
from events.bounds import IDENTIFIER, LOCATION, NAME, NOTES, TextBound, text_problem

UNKNOWN_AREA = "(unknown)"
_LABELS = {"on_time": True, "overdue": False, "none": None}


def normal(name: str) -> str:
    """A column name as compared: stripped of surrounding spaces, case-folded."""
    return name.strip().casefold()


@dataclass(frozen=True)
class Skipped:
    """A row the profile skips on purpose (``skip`` rules): the column and the rule's reason."""

    field: str
    reason: str


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "an element with children" if type(value).__name__ == "_Nested" else type(value).__name__


@dataclass(frozen=True)
class _Field:
    name: str  # the item field, for messages
    sources: tuple[tuple[str, int], ...]  # (column as the profile wrote it, position)
    constant: str | None
    numbered: str | None
    strip_prefix: str | None
    blank: str
    services: str | None
    bound: TextBound


class RowMapper:
    """One profile against one header (see the module docstring).

    Args:
        spec: the profile.
        header: the file's column names (for JSON and XML: the keys, see :func:`wanted_columns`).
        services: Open311 ``service_code`` → its texts, when a services file was given.
        what: how messages name the file (``<path>``).

    Raises:
        ImportRowError: the header lacks a column the profile needs (the first missing one is the
            error's field; the message asks whether the file is of this profile's layout).
    """

    def __init__(
        self,
        spec: ProfileSpec,
        header: Sequence[str],
        services: Mapping[str, Mapping[str, str]] | None = None,
        what: str = "the file",
    ) -> None:
        self.spec = spec
        self.width = len(header)
        self.services = services or {}
        self._index: dict[str, int] = {}
        for position, name in enumerate(header):
            self._index.setdefault(normal(name), position)
        self._missing: list[str] = []
        self._blank = frozenset(normal(v) for v in spec.blank_values)
        self._blank_words = bool(self._blank - {""})
        self.id = self._field("id", spec.id, IDENTIFIER)
        f = spec.fields
        self.text_fields = [
            self._field(name, getattr(f, name), NAME)
            for name in ("category", "category_group", "department", "unit", "source", *AREA_FIELDS)
        ]
        # the plain text fields (one column as is) are read together: one itemgetter, one check
        self._plain = [i for i, fd in enumerate(self.text_fields) if fd is not None and _is_plain(fd)]
        positions = [self.text_fields[i].sources[0][1] for i in self._plain]  # type: ignore[union-attr]
        self._plain_get = operator.itemgetter(*positions, 0) if self._plain else None
        self._plain_blank = [self.text_fields[i].blank for i in self._plain]  # type: ignore[union-attr]
        self._others = [i for i, fd in enumerate(self.text_fields) if fd is not None and i not in self._plain]
        # where each field's text sits in [*plain texts, *other texts, ""]: one comprehension orders them
        slots = [*self._plain, *self._others]
        self._order = [slots.index(i) if i in slots else len(slots) for i in range(len(self.text_fields))]
        self.address = self._field("address", f.address, LOCATION)
        self.notes = self._field("notes", f.notes, NOTES)
        t = spec.times
        self.reported = self._field("reported_at", t.reported_at, NAME)
        self.deadline = self._field("deadline", t.deadline, NAME)
        self.closed = self._field("closed_at", t.closed_at, NAME)
        self.status = self._column(spec.status.column) if spec.status else None
        self.status_values = {
            normal(k): CaseStatus(v) for k, v in (spec.status.values if spec.status else {}).items()
        }
        self.label = self._column(spec.label.column) if spec.label else None
        self.label_values = {
            normal(k): _LABELS[v] for k, v in (spec.label.values if spec.label else {}).items()
        }
        loc = spec.location
        self.lat = self._column(loc.lat) if loc else None
        self.long = self._column(loc.long) if loc else None
        self.skips = [
            (self._column(r.column), frozenset(normal(v) for v in r.values), r.reason) for r in spec.skip
        ]
        self.times = TimeReader(
            t.formats,
            spec.zone,
            shifted_clock=t.clock == "shifted_by_utc_offset",
            deadline_date_only_end=t.date_only == "end_of_day",
            midnight_is_date_only=t.midnight_is_date_only,
        )
        if self._missing:
            missing = list(dict.fromkeys(self._missing))
            drafted = [m for m in missing if m.strip().upper().startswith("TODO")]
            if drafted:  # the wizard's mark of a column it could not decide
                raise ImportRowError(
                    drafted[0],
                    f"{what}: the profile still says TODO where a column name belongs (a draft of "
                    "`duban profile draft`): name the column at each TODO, then `duban profile check`",
                )
            raise ImportRowError(
                missing[0], f"{what}: header lacks {', '.join(missing)}; is this a {spec.name} export?"
            )

    def _column(self, name: str) -> tuple[str, int]:
        position = self._index.get(normal(name))
        if position is None:
            self._missing.append(name)
            return name, -1
        return name, position

    def _field(self, name: str, spec: FieldSpec | None, bound: TextBound) -> _Field | None:
        if spec is None:
            return None
        columns = spec.sources()
        found = [(c, self._index[normal(c)]) for c in columns if normal(c) in self._index]
        if columns and not found:  # a chain needs one of its columns; a single column itself
            self._missing.append(columns[0])
        blank = spec.blank if spec.blank is not None else (UNKNOWN_AREA if name in AREA_FIELDS else "")
        return _Field(name, tuple(found), spec.constant, spec.numbered, spec.strip_prefix, blank,
                      spec.services, bound)  # fmt: skip

    # --- reading -------------------------------------------------------------------------------

    def _cell(self, cells: Sequence[Any], column: tuple[str, int]) -> str:
        value = cells[column[1]]
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ImportRowError(column[0], f"expected text, found {_kind(value)}")
        text = value.strip()
        if not text:
            return ""
        return "" if self._blank_words and normal(text) in self._blank else text

    def _text(self, cells: Sequence[Any], f: _Field | None) -> str:
        if f is None:
            return ""
        if f.constant is not None:
            return f.constant
        for name, position in f.sources:
            value = cells[position]
            if value.__class__ is not str:  # JSON and XML records hold other values too
                if value is None:
                    continue
                raise ImportRowError(name, f"expected text, found {_kind(value)}")
            text = value.strip()
            if not text or (self._blank_words and text.casefold() in self._blank):
                continue
            if f.services is not None:
                text = self.services.get(text, {}).get(f.services, "")
                if not text:
                    continue
            if (
                f.strip_prefix is not None
                and text[: len(f.strip_prefix)].casefold() == f.strip_prefix.casefold()
            ):
                number = text[len(f.strip_prefix) :].strip()
                text = f.numbered.format(n=int(number)) if f.numbered and _digits(number) else text
            elif f.numbered is not None and _digits(text):
                text = f.numbered.format(n=int(text))
            # printable text within the length needs no closer look (no control character is printable)
            if len(text) > f.bound.max_chars or not text.isprintable():
                problem = text_problem(text, f.bound)
                if problem is not None:
                    raise ImportRowError(name, problem)
            return text
        return f.blank

    def _texts(self, cells: Sequence[Any]) -> list[str]:
        """The nine text fields in order (``text_fields``). The plain ones are taken together when
        they are all text, printable and within ``NAME``; otherwise, and for the others, one by one."""
        texts = None
        if self._plain_get is not None and not self._blank_words:
            try:
                texts = [v.strip() for v in self._plain_get(cells)[:-1]]
            except AttributeError:  # a JSON value that is not text: one by one, to name it
                texts = None
            if texts is not None and "".join(texts).isprintable() and max(map(len, texts)) <= NAME.max_chars:
                texts = [t or b for t, b in zip(texts, self._plain_blank, strict=True)]
            else:
                texts = None
        if texts is None:
            texts = [self._text(cells, self.text_fields[i]) for i in self._plain]
        found = [*texts, *(self._text(cells, self.text_fields[i]) for i in self._others), ""]
        return [found[i] for i in self._order]

    def _instant(self, cells: Sequence[Any], f: _Field | None, deadline: bool = False) -> datetime | None:
        if f is None:
            return None
        for column in f.sources:
            value = cells[column[1]]
            text = value.strip() if value.__class__ is str else self._cell(cells, column)
            if text and not (self._blank_words and text.casefold() in self._blank):
                return self.times.read(text, column[0], deadline=deadline)
        return None

    def _coordinate(self, cells: Sequence[Any], column: tuple[str, int] | None, limit: float) -> float | None:
        if column is None:
            return None
        value = cells[column[1]]
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ImportRowError(column[0], f"expected a number, found {_kind(value)}")
        try:
            number = float(value)
        except ValueError:
            raise ImportRowError(column[0], f"{str(value)[:32]!r} is not a number") from None
        if not math.isfinite(number) or abs(number) > limit:
            raise ImportRowError(column[0], f"{number} is not within ±{limit:g} degrees")
        return number

    def map(self, cells: Sequence[Any], row_number: int) -> ImportedCase | Skipped:
        """Read one record (cells in header order) as a case, or a :class:`Skipped`.

        Raises:
            ImportRowError: naming the column: a missing id or report time, an unreadable or
                out-of-bounds time, an unknown status or label, text where it does not belong, a
                value outside its bound.
        """
        for column, values, reason in self.skips:
            if normal(self._cell(cells, column)) in values:
                return Skipped(column[0], reason)
        assert self.id is not None and self.reported is not None
        item_id = self._text(cells, self.id)
        if not item_id:
            raise ImportRowError(self.id.sources[0][0], "required value is missing")
        reported_at = self._instant(cells, self.reported)
        if reported_at is None:
            raise ImportRowError(self.reported.sources[0][0], "required value is missing")
        deadline = self._instant(cells, self.deadline, deadline=True)
        if self.spec.times.closed_at_only_when_closed:
            status = self._status(cells, None)
            closed_at = self._instant(cells, self.closed) if status == CaseStatus.CLOSED else None
        else:
            closed_at = self._instant(cells, self.closed)
            status = self._status(cells, closed_at)
        category, group, department, unit, source, town, community, grid, district = self._texts(cells)
        anomalies = []
        if closed_at is not None and closed_at < reported_at:
            anomalies.append("closed_before_reported")
        if deadline is not None and deadline < reported_at:
            anomalies.append("deadline_before_reported")
        lat = self._coordinate(cells, self.lat, 90)
        long = self._coordinate(cells, self.long, 180)
        zero_missing = self.spec.location is not None and self.spec.location.zero_is_missing
        if lat is None or long is None or (zero_missing and (lat == 0 or long == 0)):
            lat = long = None
        return ImportedCase(
            item_id=item_id,
            category=category,
            category_group=group,
            department=department,
            unit=unit,
            town=town,
            community=community,
            grid=grid,
            zone=self.spec.zone,
            reported_at=reported_at,
            deadline=deadline,
            closed_at=closed_at,
            status=status,
            source=source,
            row_number=row_number,
            city_on_time=self._label(cells, status),
            anomalies=tuple(anomalies),
            district=district,
            lat=lat,
            long=long,
            address=self._text(cells, self.address),
            notes=self._text(cells, self.notes),
        )

    def _status(self, cells: Sequence[Any], closed_at: datetime | None) -> CaseStatus:
        if self.status is None or self.spec.status is None:
            return CaseStatus.CLOSED if closed_at is not None else CaseStatus.OPEN
        value = cells[self.status[1]]
        if (
            value.__class__ is str
            and not self._blank_words
            and (found := self.status_values.get(value.strip().casefold()))
        ):
            return found  # the common case; blank spellings and the rest below
        text = self._cell(cells, self.status)
        found = self.status_values.get(normal(text))
        if found is not None:
            return found
        if self.spec.status.otherwise is not None:
            return CaseStatus(self.spec.status.otherwise)
        known = ", ".join(repr(v) for v in self.spec.status.values)
        raise ImportRowError(self.status[0], f"unknown status {text[:64]!r}; expected one of {known}")

    def _label(self, cells: Sequence[Any], status: CaseStatus) -> bool | None:
        if self.label is None or self.spec.label is None:
            return None
        text = self._cell(cells, self.label)
        key = normal(text)
        if key not in self.label_values:
            if not key:
                return None
            known = ", ".join(repr(v) for v in self.spec.label.values)
            raise ImportRowError(self.label[0], f"unknown label {text[:64]!r}; expected one of {known}")
        if status == CaseStatus.OPEN and self.spec.label.open_items == "ignore":
            return None
        return self.label_values[key]


def _is_plain(f: _Field) -> bool:
    """A field read from one column as written (no lookup, numbering or constant), bounded by NAME."""
    return (len(f.sources) == 1 and f.constant is None and f.services is None and f.numbered is None
            and f.strip_prefix is None and f.bound is NAME)  # fmt: skip


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def wanted_columns(spec: ProfileSpec) -> list[str]:
    """Every column a profile reads, stripped and case-folded, in a fixed order (the "header" of
    a JSON or XML record)."""
    names: list[str] = []
    f, t = spec.fields, spec.times
    for fs in (
        spec.id,
        *(getattr(f, n) for n in type(f).model_fields),
        t.reported_at,
        t.deadline,
        t.closed_at,
    ):
        if fs is not None:
            names += fs.sources()
    names += [s.column for s in (spec.status, spec.label) if s is not None]
    if spec.location:
        names += [spec.location.lat, spec.location.long]
    names += [r.column for r in spec.skip]
    return list(dict.fromkeys(normal(n) for n in names))
