"""The JSON codec of event envelopes: every rejection names the field and says why."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from helpers.event_fixtures import as_dict, rejected_field

from events import types as t
from events.codec import decode_event
from events.envelope import make_event_id
from events.errors import EventValidationError, ValidationError

# --- rejections, each naming the field ----------------------------------------------------------


@pytest.mark.parametrize("raw", [b"not json", b"{", b"\xff\xfe", ""])
def test_not_json(raw: bytes | str) -> None:
    assert rejected_field(raw) == "event"


def test_json_that_is_not_an_object() -> None:
    assert rejected_field([1, 2]) == "event"


def test_missing_event_id() -> None:
    data = as_dict()
    del data["event_id"]
    assert rejected_field(data) == "event_id"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_item_id(value: str) -> None:
    data = as_dict()
    data["item_id"] = value
    assert rejected_field(data) == "item_id"


def test_non_string_actor() -> None:
    data = as_dict()
    data["actor"] = 7
    assert rejected_field(data) == "actor"


def test_unknown_event_type() -> None:
    data = as_dict()
    data["event_type"] = "ItemTeleported"
    assert rejected_field(data) == "event_type"


@pytest.mark.parametrize("version", [0, 2, "1", True, None])
def test_wrong_schema_version(version: Any) -> None:
    data = as_dict()
    data["schema_version"] = version
    assert rejected_field(data) == "schema_version"


@pytest.mark.parametrize("sequence", [0, -1, True, False, 1.0, "1", None])
def test_bad_sequence(sequence: Any) -> None:
    data = as_dict()
    data["sequence"] = sequence
    assert rejected_field(data) == "sequence"


def test_naive_occurred_at() -> None:
    data = as_dict()
    data["occurred_at"] = "2022-01-18T15:08:24"
    assert rejected_field(data) == "occurred_at"


@pytest.mark.parametrize("value", ["18/01/2022 15:08", "yesterday", 1642518504, None])
def test_non_iso_recorded_at(value: Any) -> None:
    data = as_dict()
    data["recorded_at"] = value
    assert rejected_field(data) == "recorded_at"


def test_missing_occurred_at() -> None:
    data = as_dict()
    del data["occurred_at"]
    assert rejected_field(data) == "occurred_at"


def test_payload_not_an_object() -> None:
    data = as_dict()
    data["payload"] = ["unit"]
    assert rejected_field(data) == "payload"


def test_payload_missing_a_required_field() -> None:
    data = as_dict(t.DEADLINE_WARNED)
    del data["payload"]["threshold"]
    assert rejected_field(data) == "payload.threshold"


def test_payload_with_an_unknown_field() -> None:
    data = as_dict(t.ITEM_ACCEPTED)
    data["payload"]["mood"] = "happy"
    assert rejected_field(data) == "payload.mood"


def test_payload_null_in_a_required_field() -> None:
    data = as_dict(t.ITEM_ACCEPTED)
    data["payload"]["unit"] = None
    assert rejected_field(data) == "payload.unit"


@pytest.mark.parametrize(
    ("event_type", "name", "value"),
    [
        (t.RECTIFICATION_VERIFIED, "passed", "true"),  # string for bool
        (t.RECTIFICATION_VERIFIED, "passed", 1),  # int for bool
        (t.ITEM_CLOSED, "on_time", "yes"),  # string for optional bool
        (t.ITEM_CLOSED, "handling_seconds", True),  # bool for int
        (t.ITEM_CLOSED, "handling_seconds", 1.5),  # float for int
        (t.ITEM_ESCALATED, "level", "1"),  # string for int
        (t.RECTIFICATION_SUBMITTED, "evidence", ["a.jpg", 3]),  # list with a non-string
        (t.RECTIFICATION_SUBMITTED, "evidence", "a.jpg"),  # string for list
        (t.ITEM_ACCEPTED, "unit", 42),  # int for string
        (t.DEADLINE_BREACHED, "deadline", "2022-01-19T15:08:24"),  # naive datetime
        (t.DEADLINE_BREACHED, "deadline", "tomorrow"),  # not ISO
        (t.ITEM_REGISTERED, "resolution_deadline", 1642518504),  # number for datetime
    ],
)
def test_payload_value_of_the_wrong_kind(event_type: str, name: str, value: Any) -> None:
    data = as_dict(event_type)
    data["payload"][name] = value
    assert rejected_field(data) == f"payload.{name}"


def test_extra_envelope_field() -> None:
    data = as_dict()
    data["priority"] = "high"
    assert rejected_field(data) == "priority"


def test_error_message_names_field_and_reason() -> None:
    data = as_dict()
    data["sequence"] = 0
    with pytest.raises(EventValidationError) as info:
        decode_event(json.dumps(data))
    assert str(info.value).startswith("sequence: ")
    assert isinstance(info.value, ValidationError)


CANONICAL_ID = make_event_id("BOS-1", 3)


@pytest.mark.parametrize(
    "value",
    [
        CANONICAL_ID,
        CANONICAL_ID.upper(),
        "{" + CANONICAL_ID + "}",
        "urn:uuid:" + CANONICAL_ID,
        CANONICAL_ID.replace("-", ""),
        CANONICAL_ID + "\n",
        " " + CANONICAL_ID,
        CANONICAL_ID[:-1] + "g",
        CANONICAL_ID[:8] + "_" + CANONICAL_ID[9:],
    ],
)
def test_event_ids_in_canonical_form_only(value: str) -> None:
    """Accepted exactly when ``uuid`` itself writes the id so (the oracle: ``str(uuid.UUID(v))``)."""
    try:
        canonical = str(uuid.UUID(value)) == value
    except ValueError:
        canonical = False
    data = as_dict() | {"event_id": value}
    if canonical:
        assert decode_event(json.dumps(data)).event_id == value
    else:
        assert rejected_field(data) == "event_id"
