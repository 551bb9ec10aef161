"""The bounds of every value duban accepts, as data, and the one place they are checked.

Every registration, command and event field has a bound here: a maximum length and the characters
allowed for text, a range for instants and whole numbers, a maximum count for lists. The pure core
(``workflows.item_checks``, ``workflows.item_rules.register``) refuses a registration or a command
outside them before anything is recorded, and the event codec (``events.codec``) refuses an event
outside them, so the projector dead-letters such a message instead of failing on it. The same value
gets the same answer on SQLite and PostgreSQL because no database ever sees a value out of bounds.

Where the numbers come from:

- Text lengths fit the columns of the event store (``events.store``) and of the read models
  (``projections.read_models``): ``tests/test_bounds.py`` checks every column against its bound.
  Lengths count characters (code points), as PostgreSQL's ``varchar(n)`` does.
- No NUL: PostgreSQL text cannot hold it. No lone surrogates: they cannot be encoded as UTF-8 (Kafka
  and PostgreSQL would refuse them). No other control characters, except tab, line feed and carriage
  return in free text (notes, reasons).
- Instants: inputs from 1990 to 2100 (UTC); stored events from 1970 to 2200, wide enough for every
  instant derived from bounded inputs (a deadline counted from a registration, a rung after it) and
  far from the ends of ``datetime`` (``0001``/``9999``), where converting to a local zone overflows.
- A deadline or an extension target at most ``DEADLINE_HORIZON`` (10 years) after the registration:
  long-term problems are suspended, not given decade-long deadlines.
- Sizes: at most 20 evidence references (references to photos, not the photos) and 20 departments
  per grid call; an encoded event of at most 256 KiB, a quarter of Kafka's default message limit
  (1 MB) and far below Temporal's payload limit (2 MB); an item takes at most 2,000 commands, which
  keeps the state it carries across continue-as-new well below Temporal's payload limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final


@dataclass(frozen=True)
class TextBound:
    """A text field's bound: at most ``max_chars`` characters; ``multiline`` free text may hold tab,
    line feed and carriage return; a ``trimmed`` identifier has no surrounding whitespace."""

    max_chars: int
    multiline: bool = False
    trimmed: bool = False


IDENTIFIER: Final = TextBound(128, trimmed=True)
"""Item, command, order and adjustment ids (``item_view.item_id``: 128)."""
NAME: Final = TextBound(128)
"""Names of people, units, departments, areas, categories, sources (columns of 256)."""
CODE: Final = TextBound(32, trimmed=True)
"""Short codes: command kinds, roles, stages, lights, milestones, urgencies, calendars."""
ZONE: Final = TextBound(64, trimmed=True)
"""IANA zone names (``item_view.zone``: 64); the zone must also exist."""
NOTES: Final = TextBound(4000, multiline=True)
REASON: Final = TextBound(2000, multiline=True)
LOCATION: Final = TextBound(256)
REFERENCE: Final = TextBound(1024, trimmed=True)
"""One evidence reference (a photo's URL or id)."""

COMMAND_TEXT: Final[dict[str, TextBound]] = {
    "command_id": IDENTIFIER,
    "kind": CODE,
    "actor": NAME,
    "department": NAME,
    "unit": NAME,
    "notes": NOTES,
    "reason": REASON,
    "role": CODE,
    "location": LOCATION,
    "into_item_id": IDENTIFIER,
}
"""Text fields of an ``ItemCommand`` (``workflows.item_model``)."""

COMMAND_LISTS: Final[dict[str, tuple[int, TextBound]]] = {
    "evidence": (20, REFERENCE),
    "departments": (20, NAME),
}
"""List fields of an ``ItemCommand``: (most entries, bound of each entry)."""

REGISTRATION_TEXT: Final[dict[str, TextBound]] = {
    "item_id": IDENTIFIER,
    "category": NAME,
    "department": NAME,
    "unit": NAME,
    "category_group": NAME,
    "town": NAME,
    "community": NAME,
    "grid": NAME,
    "zone": ZONE,
    "source": NAME,
    "actor": NAME,
    "deadline_origin": CODE,
    "urgency": CODE,
    "order_id": IDENTIFIER,
    "district": NAME,
}
"""Text fields of a ``Registration``."""

ENVELOPE_TEXT: Final[dict[str, TextBound]] = {
    "event_id": TextBound(64, trimmed=True),
    "event_type": TextBound(64, trimmed=True),
    "item_id": IDENTIFIER,
    "actor": NAME,
    "correlation_id": TextBound(256),
    "causation_id": TextBound(256),
}
"""Text fields of an event envelope. Its ``item_id`` is an item id or, for a manual score
adjustment, ``score-adjustment:<adjustment id>`` (hence ``ADJUSTMENT_ID``)."""

ADJUSTMENT_ID: Final = TextBound(96, trimmed=True)
"""Id of a manual score adjustment: ``score-adjustment:<id>`` is at most 113 characters."""

PAYLOAD_TEXT: Final[dict[str, TextBound]] = {
    **{name: bound for name, bound in REGISTRATION_TEXT.items() if name not in ("item_id", "actor")},
    "unit": NAME,
    "notes": NOTES,
    "reason": REASON,
    "role": CODE,
    "location": LOCATION,
    "into_item_id": IDENTIFIER,
    "dispatched_by": NAME,
    "rulebook_version": TextBound(64),
    "calendar": CODE,
    "milestone": CODE,
    "threshold": CODE,
    "light": CODE,
    "previous": CODE,
    "rung": CODE,
    "basis": CODE,
    "level": CODE,
    "unit_key": NAME,
    "day": CODE,
    "points": CODE,
    "approver": NAME,
    "period": CODE,
    "scorebook_version": TextBound(64),
    "item": IDENTIFIER,
}
"""Text fields of event payloads (``events.types.EVENT_TYPES``), by field name."""

PAYLOAD_LISTS: Final[dict[str, tuple[int, TextBound]]] = {
    "evidence": (20, REFERENCE),
    "departments": (20, NAME),
    "rules": (10, CODE),
    "reasons": (10, REASON),
}
"""List fields of event payloads: (most entries, bound of each entry)."""

INT_RANGE: Final = (0, 1_000_000)
"""Range of a counting payload field (levels, numbers of episodes, reviews, extensions…)."""
SECONDS_RANGE: Final = (-(10**10), 10**10)
"""Range of a payload field in seconds (about ±317 years; handling time can be negative: LA's
export has cases closed before they were created)."""
PAYLOAD_INT_RANGES: Final[dict[str, tuple[int, int]]] = {
    "handling_seconds": SECONDS_RANGE,
    "remaining_seconds": SECONDS_RANGE,
    "suspended_seconds": SECONDS_RANGE,
    "level": (0, 16),
    "rating": (0, 5),
}
"""Whole-number payload fields with a range of their own; any other has ``INT_RANGE``."""

MAX_SEQUENCE: Final = 1_000_000
"""Largest position of an event in its item's stream (``event_store.sequence`` is a 32-bit int)."""

EARLIEST: Final = datetime(1990, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)
"""Every instant of a registration or a command lies in ``[EARLIEST, LATEST)``."""
STORED_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
STORED_LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)
"""Every instant of a stored event lies in ``[STORED_EARLIEST, STORED_LATEST)``."""
DEADLINE_HORIZON: Final = timedelta(days=3653)
"""A deadline (given or extended) lies at most this long (10 years) after the registration."""

MAX_EVENT_BYTES: Final = 256 * 1024
"""Largest encoded event (UTF-8 JSON bytes)."""
MAX_COMMANDS_PER_ITEM: Final = 2000
"""Most commands an item applies over its life."""
MAX_RESPONDERS: Final = 100
"""Most departments called to one item over its life."""
MAX_INITIAL_COMMANDS: Final = 50
"""Most commands a workflow input may carry to apply right after registration."""
MAX_REJECTED_KEPT: Final = 200
"""Refused commands an item lists in its state (the newest; older ones are only counted)."""
KEPT_REASON_CHARS: Final = 500
"""A refusal's reason is kept (and logged) to at most this many characters, its command id to
``IDENTIFIER.max_chars``: 200 kept refusals stay well under Temporal's 2 MiB payload limit however
long the refused input was."""

POINTS_MAX: Final = Decimal(1000)
POINTS_PLACES: Final = 2
"""A manual score adjustment: at most ±1000 points, to 0.01 (DOMAIN.md: scores are exact decimals
to 0.01)."""


_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""NUL, the other control characters (Unicode category Cc) and lone surrogates."""
_FORBIDDEN_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""The same, but tab, line feed and carriage return are allowed."""


def clipped(text: str, most: int) -> str:
    """``text`` if it has at most ``most`` characters (``most`` ≥ 16), else its beginning followed by
    ``…+N``, N being how many characters were cut, in at most ``most`` characters all told."""
    if len(text) <= most:
        return text
    keep = most - len(f"…+{len(text)}")
    return f"{text[:keep]}…+{len(text) - keep}"


def text_problem(value: object, bound: TextBound) -> str | None:
    """What is wrong with ``value`` as a text of ``bound`` (a reason without the field name), or
    ``None``. Empty text is within bounds (whether a field may be empty is a rule of its own)."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if len(value) > bound.max_chars:
        return f"is {len(value)} characters long; at most {bound.max_chars} are allowed"
    if bound.trimmed and value != value.strip():
        return "must not begin or end with whitespace"
    found = (_FORBIDDEN_MULTILINE if bound.multiline else _FORBIDDEN).search(value)
    if found is None:
        return None
    char, at = found.group(), found.start()
    if char == "\x00":
        return f"contains a NUL character (at {at}), which no database stores"
    if "\ud800" <= char <= "\udfff":
        return f"contains a lone surrogate (at {at}), which is not Unicode text"
    return f"contains the control character {char!r} (at {at})"


def list_problem(value: object, most: int, bound: TextBound) -> str | None:
    """What is wrong with ``value`` as a list of at most ``most`` non-empty texts of ``bound``."""
    if not isinstance(value, list):
        return f"must be a list of strings, got {type(value).__name__}"
    if len(value) > most:
        return f"has {len(value)} entries; at most {most} are allowed"
    for i, entry in enumerate(value):
        problem = text_problem(entry, bound)
        if problem is None and not entry.strip():
            problem = "must not be empty"
        if problem is not None:
            return f"entry {i} {problem}"
    return None


def instant_problem(value: object, stored: bool = False) -> str | None:
    """What is wrong with ``value`` as an instant (an aware datetime in the input range, or with
    ``stored`` in the range of stored events), or ``None``."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        return "must be an aware datetime (with a UTC offset)"
    low, high = (STORED_EARLIEST, STORED_LATEST) if stored else (EARLIEST, LATEST)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not low <= utc < high:
        return f"must lie from {low:%Y-%m-%d} to {high:%Y-%m-%d} (UTC), got {value.isoformat()}"
    return None


def int_problem(value: object, low: int, high: int) -> str | None:
    """What is wrong with ``value`` as a whole number in ``[low, high]`` (``bool`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number, got {type(value).__name__}"
    if not low <= value <= high:
        return f"must be from {low} to {high}, got {value}"
    return None


def float_problem(value: object, low: float, high: float) -> str | None:
    """What is wrong with ``value`` as a finite number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if not low <= value <= high:
        return f"must be from {low} to {high}, got {value}"
    return None


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL = frozenset({"inf", "infinity", "nan", "snan"})


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def iso_day(text: object) -> date | None:
    """The date ``text`` spells as ``YYYY-MM-DD`` in ASCII digits, or ``None`` (not ``2022-W19-1``,
    ``20220503``, ``2026-11-31`` or full-width digits, which ``date.fromisoformat`` may accept)."""
    if not isinstance(text, str) or not _ISO_DAY.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def points_problem(text: object) -> str | None:
    """What is wrong with ``text`` as the points of a manual adjustment (``"-1.50"``), or ``None``."""
    if not isinstance(text, str) or len(text) > CODE.max_chars:
        return f"must be a decimal number of at most {CODE.max_chars} characters"
    if not _DECIMAL.fullmatch(text):  # Decimal() would take " 5", "1_0" and "Infinity"
        return (
            "must be a finite decimal number"
            if text.strip().lower().lstrip("+-") in _SPECIAL
            else (f"{text!r} is not a decimal number (digits, one point, an exponent: -1.50, 1e3)")
        )
    try:
        points = Decimal(text)
    except InvalidOperation:
        return f"{text!r} is not a decimal number"
    if points.is_zero():
        return "must not be zero (an adjustment changes a score)"
    if not points.is_finite():
        return "must be a finite decimal number"
    if points.copy_abs() > POINTS_MAX:  # copy_abs, unlike abs, never rounds: 1e999999999 overflows
        return f"must lie from -{POINTS_MAX} to {POINTS_MAX}, got {text}"
    exponent = points.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -POINTS_PLACES:
        return f"must have at most {POINTS_PLACES} decimal places, got {text}"
    return None
