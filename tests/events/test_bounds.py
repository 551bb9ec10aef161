"""The bounds of events.bounds: they cover every field, fit every column, and say why a value is out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import String

from events import bounds as b
from events import types as t
from events.store import stored_events
from projections import read_models as rm
from workflows.item_model import ItemCommand, Registration

# Which bound feeds each text column (table.column → the longest value that can reach it).
FEEDS: dict[str, int] = {
    "event_store.event_id": b.ENVELOPE_TEXT["event_id"].max_chars,
    "event_store.event_type": b.ENVELOPE_TEXT["event_type"].max_chars,
    "event_store.item_id": b.ENVELOPE_TEXT["item_id"].max_chars,
    "event_store.actor": b.ENVELOPE_TEXT["actor"].max_chars,
    "event_store.correlation_id": b.ENVELOPE_TEXT["correlation_id"].max_chars,
    "event_store.causation_id": b.ENVELOPE_TEXT["causation_id"].max_chars,
    "event_store.digest": 64,  # a SHA-256 in hex
    "event_store.chain": 64,  # a SHA-256 in hex (events.chain)
    "item_view.item_id": b.IDENTIFIER.max_chars,
    "item_view.category": b.PAYLOAD_TEXT["category"].max_chars,
    "item_view.department": b.PAYLOAD_TEXT["department"].max_chars,
    "item_view.unit": b.PAYLOAD_TEXT["unit"].max_chars,
    "item_view.town": b.PAYLOAD_TEXT["town"].max_chars,
    "item_view.community": b.PAYLOAD_TEXT["community"].max_chars,
    "item_view.grid": b.PAYLOAD_TEXT["grid"].max_chars,
    "item_view.zone": b.PAYLOAD_TEXT["zone"].max_chars,
    "item_view.order_id": b.PAYLOAD_TEXT["order_id"].max_chars,
    "item_view.district": b.PAYLOAD_TEXT["district"].max_chars,
    "item_view.calendar": b.PAYLOAD_TEXT["calendar"].max_chars,
    "item_view.stage": 32,  # a Stage value
    "item_view.resume_stage": 32,  # a Stage value (the stage a suspended item resumes in)
    "item_view.intake_department": b.PAYLOAD_TEXT["department"].max_chars,
    "unit_day_counters.level": max(len(level) for level in rm.LEVELS),
    "unit_day_counters.unit_key": max(b.NAME.max_chars, b.IDENTIFIER.max_chars),  # names; order ids
    "applied_events.event_id": b.ENVELOPE_TEXT["event_id"].max_chars,
    "applied_events.item_id": b.ENVELOPE_TEXT["item_id"].max_chars,
    "applied_events.topic": 249,  # Kafka's longest topic name
    "dead_letters.source": 512,  # cut to 512 by the projector
    "dead_letters.event_id": b.ENVELOPE_TEXT["event_id"].max_chars,
    "dead_letters.item_id": b.IDENTIFIER.max_chars,
    "score_adjustments.event_id": b.ENVELOPE_TEXT["event_id"].max_chars,
    "score_adjustments.level": max(len(level) for level in rm.LEVELS),
    "score_adjustments.unit_key": b.PAYLOAD_TEXT["unit_key"].max_chars,
    "score_adjustments.points": b.PAYLOAD_TEXT["points"].max_chars,
    "score_adjustments.approver": b.PAYLOAD_TEXT["approver"].max_chars,
    "interviews.event_id": b.ENVELOPE_TEXT["event_id"].max_chars,
    "interviews.period": b.PAYLOAD_TEXT["period"].max_chars,
    "interviews.level": max(len(level) for level in rm.LEVELS),  # other levels are dead letters
    "interviews.unit_key": b.PAYLOAD_TEXT["unit_key"].max_chars,
    "interviews.scorebook_version": b.PAYLOAD_TEXT["scorebook_version"].max_chars,
    "projection_positions.projection": 64,
    "projection_positions.topic": 249,
}


def test_every_bounded_text_column_holds_the_longest_value_that_can_reach_it() -> None:
    tables = [stored_events, *rm.metadata.tables.values()]
    columns = {
        f"{table.name}.{c.name}": c.type.length
        for table in tables
        for c in table.columns
        if isinstance(c.type, String) and c.type.length is not None
    }
    assert set(columns) == set(FEEDS)  # a new column needs its bound here
    too_small = {name: (length, FEEDS[name]) for name, length in columns.items() if length < FEEDS[name]}
    assert too_small == {}


def test_every_text_field_of_commands_registrations_and_events_has_a_bound() -> None:
    command_texts = {n for n, f in ItemCommand.__dataclass_fields__.items() if f.type in ("str", str)}
    assert command_texts == set(b.COMMAND_TEXT)
    registration_texts = {n for n, f in Registration.__dataclass_fields__.items() if f.type in ("str", str)}
    assert registration_texts == set(b.REGISTRATION_TEXT)
    payload_texts = {
        n for schema in t.EVENT_TYPES.values() for n, kind in schema.items() if kind.startswith("str")
    }
    lists = {n for schema in t.EVENT_TYPES.values() for n, kind in schema.items() if kind == t.STR_LIST}
    assert payload_texts - lists <= set(b.PAYLOAD_TEXT) and lists <= set(b.PAYLOAD_LISTS)


@pytest.mark.parametrize(
    ("value", "bound", "reason"),
    [
        ("a" * 129, b.IDENTIFIER, "is 129 characters long; at most 128 are allowed"),
        (" id", b.IDENTIFIER, "must not begin or end with whitespace"),
        ("a\x00b", b.NAME, "contains a NUL character (at 1), which no database stores"),
        ("a\ud800", b.NOTES, "contains a lone surrogate (at 1), which is not Unicode text"),
        ("a\nb", b.NAME, "contains the control character '\\n' (at 1)"),
        ("a\x1bb", b.NOTES, "contains the control character '\\x1b' (at 1)"),
        (12, b.NAME, "must be a string, got int"),
    ],
)
def test_text_out_of_bounds_says_why(value: object, bound: b.TextBound, reason: str) -> None:
    assert b.text_problem(value, bound) == reason


def test_text_within_bounds() -> None:
    assert b.text_problem("清扫完毕\n\t照片已上传\r\n", b.NOTES) is None  # free text: tab and newlines
    assert b.text_problem("x" * 128, b.IDENTIFIER) is None
    assert b.text_problem("", b.NAME) is None  # empty is a rule of its own, not a bound


def test_instants_lie_between_1990_and_2100_for_input_and_1970_and_2200_when_stored() -> None:
    assert b.instant_problem(datetime(1990, 1, 1, tzinfo=UTC)) is None
    assert b.instant_problem(datetime(2099, 12, 31, 23, 59, tzinfo=UTC)) is None
    assert "must lie from 1990-01-01 to 2100-01-01" in str(
        b.instant_problem(datetime(2100, 1, 1, tzinfo=UTC))
    )
    far = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))  # overflows when converted to UTC
    assert "must lie from" in str(b.instant_problem(far, stored=True))
    assert b.instant_problem(datetime(2150, 1, 1, tzinfo=UTC), stored=True) is None
    assert b.instant_problem(datetime(2026, 1, 1)) == "must be an aware datetime (with a UTC offset)"


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        ("1" * 40, "must be a decimal number of at most 32 characters"),
        ("1.005", "must have at most 2 decimal places, got 1.005"),
        ("1000.01", "must lie from -1000 to 1000, got 1000.01"),
        ("Infinity", "must be a finite decimal number"),
        ("1e999999999", "must lie from -1000 to 1000, got 1e999999999"),  # raised decimal.Overflow
        ("-1E+1000000", "must lie from -1000 to 1000, got -1E+1000000"),
        ("1e-999999999", "must have at most 2 decimal places, got 1e-999999999"),
        ("1e3", None),
        ("lots", "'lots' is not a decimal number (digits, one point, an exponent: -1.50, 1e3)"),
        ("1_0", "'1_0' is not a decimal number (digits, one point, an exponent: -1.50, 1e3)"),  # was 10
        (" 5", "' 5' is not a decimal number (digits, one point, an exponent: -1.50, 1e3)"),
        ("-0", "must not be zero (an adjustment changes a score)"),  # was shown as -0 points
        ("-1.50", None),
        ("1000", None),
    ],
)
def test_adjustment_points(points: str, problem: str | None) -> None:
    assert b.points_problem(points) == problem


@pytest.mark.parametrize(
    ("text", "most", "expected"),
    [
        ("short", 16, "short"),
        ("x" * 16, 16, "x" * 16),
        ("x" * 17, 16, "x" * 12 + "…+5"),  # "…+17" is 4 characters: 12 kept, 5 cut
        ("y" * 200_000, 128, "y" * 120 + "…+199880"),
    ],
)
def test_clipped_keeps_the_beginning_and_says_how_much_was_cut(text: str, most: int, expected: str) -> None:
    assert b.clipped(text, most) == expected
    assert len(b.clipped(text, most)) <= most


def test_lists_and_numbers() -> None:
    assert b.list_problem(["a"] * 21, 20, b.REFERENCE) == "has 21 entries; at most 20 are allowed"
    assert b.list_problem("abc", 20, b.REFERENCE) == "must be a list of strings, got str"
    assert b.list_problem(["ok", " "], 20, b.REFERENCE) == "entry 1 must not begin or end with whitespace"
    assert b.int_problem(True, 0, 5) == "must be a whole number, got bool"
    assert b.int_problem(2**40, 0, b.MAX_SEQUENCE) == f"must be from 0 to {b.MAX_SEQUENCE}, got {2**40}"
    assert b.float_problem(float("nan"), 0, 1) == "must be a finite number, got nan"
