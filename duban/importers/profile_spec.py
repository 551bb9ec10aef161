"""Import profiles as data: the YAML a user writes for a layout, and its validation.

A profile says how one export layout maps onto supervision items (``ImportedCase``): which column
holds the id, each item field (a column, a fallback chain of columns, or a constant), how times are
written (formats tried in order, the area's IANA zone, date-only values, a clock-correction rule),
which status values mean open, closed, cancelled or referred out, the city's own on-time label, the
areas and how blank is spelled, the location, and which rows to skip and why. ``duban/importers/
builtin/*.yaml`` are the built-in profiles (``boston311``, ``la311``, ``open311``); the README shows a
user-written one. Column names match without regard to case and surrounding spaces.

:func:`load_profile_file` reads and checks one (a YAML mapping with no repeated key); every error is
one line naming the file and the key path (``times.formats.1: …``). Pydantic does the checking.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from duban.errors import ConfigurationError

Status = Literal["open", "closed", "cancelled", "referred_out"]
Label = Literal["on_time", "overdue", "none"]
ISO = "iso"
"""The time format ``iso``: ISO 8601 as ``datetime.fromisoformat`` reads it (an offset, when written,
is honoured; without one the time is local to the profile's zone)."""
MAX_PROFILE_BYTES = 256 * 1024
STRPTIME_DIRECTIVES = "aAwdbBmyYHIpMSfzZjUWcxXGuV"
"""The directives ``datetime.strptime`` reads (Python's documentation, "strftime() and strptime()
Format Codes")."""
AREA_FIELDS = ("town", "community", "grid", "district")
TEXT_FIELDS = ("category", "category_group", "department", "unit", "source", *AREA_FIELDS)
EXTRA_FIELDS = ("address", "notes")
SERVICE_KEYS = ("service_name", "group", "description")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """Where one item field comes from: ``column``, ``columns`` (the first non-blank, in order) or a
    ``constant``. ``numbered`` spells a bare number (``"Ward {n}"``: ``03`` → ``Ward 3``), after
    ``strip_prefix`` is removed (``CD``: ``cd 13`` → ``13``). ``blank`` is what duban writes when every
    column is blank (areas: ``(unknown)`` unless said). ``services`` looks the value up in the
    Open311 services file given with the import (``service_name``, ``group`` or ``description``)."""

    column: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1, max_length=16)
    constant: str | None = Field(default=None, max_length=128)
    numbered: str | None = None
    strip_prefix: str | None = Field(default=None, min_length=1, max_length=16)
    blank: str | None = Field(default=None, max_length=128)
    services: Literal["service_name", "group", "description"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"column": value}
        if isinstance(value, list):
            return {"columns": value}
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [n for n in ("column", "columns", "constant") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, columns (a fallback chain) or constant")
        if self.numbered is not None and "{n}" not in self.numbered:
            raise ValueError("numbered must contain {n} (e.g. 'Ward {n}')")
        if self.services is not None and self.constant is not None:
            raise ValueError("services looks a column's value up: give column or columns")
        return self

    def sources(self) -> list[str]:
        """The columns read, in order (none for a constant)."""
        return [self.column] if self.column is not None else list(self.columns or [])


class Fields(_Strict):
    """The item's text fields. Only ``category`` is required."""

    category: FieldSpec
    category_group: FieldSpec | None = None
    department: FieldSpec | None = None
    unit: FieldSpec | None = None
    source: FieldSpec | None = None
    town: FieldSpec | None = None
    community: FieldSpec | None = None
    grid: FieldSpec | None = None
    district: FieldSpec | None = None
    address: FieldSpec | None = None
    notes: FieldSpec | None = None


class TimesSpec(_Strict):
    """Times: the columns of the report, the deadline and the close, and how they are written.

    ``formats``: ``strptime`` formats (or ``iso``) tried in order. ``clock``: ``local`` (a time
    without an offset is the local time of the profile's zone) or ``shifted_by_utc_offset`` (Boston's
    export wrote each local time as if it were UTC, then in local time: ``duban.importers.times``).
    ``date_only``: what a deadline written without a time means (``end_of_day``, DOMAIN.md; or
    ``start_of_day``); a report or close time without one is the start of that day.
    ``midnight_is_date_only``: a deadline at exactly 00:00:00 is how the export writes a date (LA).
    ``closed_at_only_when_closed``: the close column is read only when the status says closed
    (Open311's ``updated_datetime`` is the last change of an open request, its close of a closed one)."""

    formats: list[str] = Field(default_factory=lambda: [ISO], min_length=1, max_length=8)
    clock: Literal["local", "shifted_by_utc_offset"] = "local"
    reported_at: FieldSpec
    deadline: FieldSpec | None = None
    closed_at: FieldSpec | None = None
    date_only: Literal["end_of_day", "start_of_day"] = "end_of_day"
    midnight_is_date_only: bool = False
    closed_at_only_when_closed: bool = False

    @field_validator("formats")
    @classmethod
    def _formats_work(cls, formats: list[str]) -> list[str]:
        for position, fmt in enumerate(formats):
            if fmt == ISO:
                continue
            if "%" not in fmt:
                raise ValueError(f"item {position}: {fmt!r} is neither 'iso' nor a strptime format")
            unknown = sorted(set(re.findall(r"%(.)", fmt.replace("%%", ""))) - set(STRPTIME_DIRECTIVES))
            if unknown:
                bad = ", ".join(f"%{d}" for d in unknown)
                raise ValueError(f"item {position}: {fmt!r} is not a strptime format (unknown {bad})")
        return formats

    @model_validator(mode="after")
    def _no_constants(self) -> TimesSpec:
        for name in ("reported_at", "deadline", "closed_at"):
            spec = getattr(self, name)
            if spec is not None and (spec.constant is not None or spec.numbered or spec.services):
                raise ValueError(f"{name}: a time comes from column or columns only")
        return self


class StatusSpec(_Strict):
    """The status column and what each value means (matched without regard to case and spaces);
    ``otherwise``: the meaning of any other value (by default such a row is rejected)."""

    column: str
    values: dict[str, Status] = Field(min_length=1, max_length=200)
    otherwise: Status | None = None


class LabelSpec(_Strict):
    """The city's own on-time label: the column, what each value means, and what a label on an item
    still open means: ``not_overdue_yet`` (on time = not past its deadline so far) or ``ignore``."""

    column: str
    values: dict[str, Label] = Field(min_length=1, max_length=50)
    open_items: Literal["not_overdue_yet", "ignore"] = "not_overdue_yet"


class LocationSpec(_Strict):
    """Coordinates (WGS 84 degrees). ``zero_is_missing``: ``0`` means no location (Open311 servers
    write ``lat: 0`` for none)."""

    lat: str
    long: str
    zero_is_missing: bool = True


class SkipRule(_Strict):
    """Rows to skip (counted, never imported): those whose ``column`` holds one of ``values``."""

    column: str
    values: list[str] = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=200)


class ProfileSpec(_Strict):
    """One import profile (see the module docstring and the README's example)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = Field(default="", max_length=2000)
    format: Literal["csv", "json", "xml"] = "csv"
    encoding: str = "utf-8-sig"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    zone: str
    id: FieldSpec
    fields: Fields
    times: TimesSpec
    status: StatusSpec | None = None
    label: LabelSpec | None = None
    location: LocationSpec | None = None
    blank_values: list[str] = Field(default_factory=lambda: [""], max_length=50)
    skip: list[SkipRule] = Field(default_factory=list, max_length=50)

    @field_validator("zone")
    @classmethod
    def _zone_exists(cls, zone: str) -> str:
        problem = zone_problem(zone)
        if problem:
            raise ValueError(problem)
        return zone

    @field_validator("encoding")
    @classmethod
    def _encoding_exists(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"{encoding!r} is not a text encoding Python knows") from None
        return encoding

    @model_validator(mode="after")
    def _id_is_a_column(self) -> ProfileSpec:
        if self.id.constant is not None:
            raise ValueError("id: the id comes from column or columns, not a constant")
        return self


def zone_problem(zone: str) -> str | None:
    """Why ``zone`` is not an IANA time zone name, or ``None``."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{zone[:64]!r} is not an IANA time zone (e.g. America/Chicago)"
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with a repeated key (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} repeated (line {mark.line + 1})", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-")) or "(profile)"


def parse_profile(data: Any, source: str) -> ProfileSpec:
    """Check parsed YAML ``data`` as a profile.

    Raises:
        ConfigurationError: one line, ``<source>: <key path>: <reason>`` (the first problem; the
            number of others follows in parentheses).
    """
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{source}: (profile): expected a mapping of keys, found {type(data).__name__}"
        )
    try:
        return ProfileSpec.model_validate(data)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"{source}: {_key_path(tuple(first['loc']))}: {message}{more}") from None


def load_profile_file(path: Path) -> ProfileSpec:
    """Read and check the YAML profile at ``path`` (at most 256 KiB, UTF-8, no repeated key).

    Raises:
        ConfigurationError: the file cannot be read, is not YAML, or is not a valid profile; one
            line naming the file, and the key path or the line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_PROFILE_BYTES:
        raise ConfigurationError(f"{path}: larger than {MAX_PROFILE_BYTES // 1024} KiB; is this a profile?")
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(f"{path}: not valid YAML: {where}{problem}") from None
    return parse_profile(data, str(path))
