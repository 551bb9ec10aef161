"""The JSON codec of event envelopes: round trips of every event type and every rejection, by field."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from events import types as t
from events.codec import decode_event, encode_event, event_to_dict, read_encoded, trusted_event
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from events.errors import EventValidationError, ValidationError

T0 = datetime(2022, 1, 18, 15, 8, 24, tzinfo=UTC)
DEADLINE = "2022-01-19T15:08:24+00:00"

PAYLOADS: dict[str, dict[str, Any]] = {
    t.ITEM_REGISTERED: {
        "category": "Litter",
        "category_group": "sanitation",
        "department": "PWD",
        "unit": "PWD-street",
        "town": "Sibaoshan",
        "community": "C1",
        "grid": "G7",
        "zone": "Asia/Shanghai",
        "source": "patrol",
        "response_deadline": None,
        "resolution_deadline": DEADLINE,
        "deadline_origin": "rule",
        "urgency": "normal",
        "rulebook_version": "2026.1",
        "calendar": "china",
        "order_id": "",
        "district": "Qiaotou",
    },
    t.ITEM_DISPATCHED: {"department": "PWD", "unit": "PWD-street", "role": "dispatcher"},
    t.ITEM_ACCEPTED: {"unit": "PWD-street", "role": "handling_unit"},
    t.RECTIFICATION_SUBMITTED: {
        "unit": "PWD-street",
        "notes": "swept",
        "evidence": ["a.jpg", "b.jpg"],
        "location": "31.2,121.5",
        "role": "handling_unit",
    },
    t.RECTIFICATION_VERIFIED: {"passed": True, "notes": "clean", "role": "inspector"},
    t.ITEM_CLOSED: {"on_time": True, "resolution_deadline": DEADLINE, "handling_seconds": 3600, "role": ""},
    t.ITEM_CANCELLED: {"reason": "duplicate report", "role": "dispatcher"},
    t.DEADLINE_WARNED: {"milestone": "resolution", "deadline": DEADLINE, "threshold": "0.75"},
    t.DEADLINE_BREACHED: {"milestone": "resolution", "deadline": DEADLINE},
    t.ITEM_ESCALATED: {"milestone": "resolution", "level": 1, "rung": "department_head"},
    t.ITEM_RETURNED: {
        "unit": "U1",
        "department": "PWD",
        "dispatched_by": "centre:li",
        "reason": "not ours",
        "role": "handling_unit",
        "redispatch_count": 1,
    },
    t.REWORK_ORDERED: {"unit": "U1", "episode": 1, "reason": "still dirty"},
    t.EXTENSION_REQUESTED: {
        "milestone": "resolution",
        "current_deadline": DEADLINE,
        "requested_deadline": DEADLINE,
        "reason": "parts",
        "role": "handling_unit",
        "extension_number": 1,
    },
    t.EXTENSION_APPROVED: {
        "milestone": "resolution",
        "previous_deadline": DEADLINE,
        "deadline": DEADLINE,
        "extension_number": 1,
        "role": "duty_chief",
        "reason": "",
    },
    t.EXTENSION_REJECTED: {
        "milestone": "resolution",
        "requested_deadline": DEADLINE,
        "extension_number": 2,
        "role": "district_leader",
        "reason": "no",
    },
    t.ITEM_SUSPENDED: {
        "reason": "long-term",
        "role": "duty_chief",
        "remaining_seconds": 7200,
        "basis": "working",
    },
    t.ITEM_RESUMED: {
        "role": "duty_chief",
        "reason": "",
        "suspended_seconds": 86400,
        "response_deadline": None,
        "resolution_deadline": DEADLINE,
    },
    t.SUSPENSION_REVIEW_DUE: {"suspended_since": DEADLINE, "review": 1},
    t.ITEM_MERGED: {"into_item_id": "I-1", "reason": "duplicate", "role": "dispatcher"},
    t.TRAFFIC_LIGHT_CHANGED: {
        "milestone": "resolution",
        "light": "yellow",
        "previous": "green",
        "deadline": DEADLINE,
    },
    t.GRID_CALL_PLACED: {
        "departments": ["PWD", "ISD"],
        "report_in_deadline": DEADLINE,
        "reason": "",
        "role": "",
    },
    t.DEPARTMENT_REPORTED_IN: {
        "department": "PWD",
        "late": False,
        "report_in_deadline": DEADLINE,
        "role": "",
    },
    t.REPORT_IN_OVERDUE: {"department": "ISD", "report_in_deadline": DEADLINE},
    t.RESPONDER_RATED: {"department": "PWD", "rating": 5, "notes": ""},
    t.SCORE_ADJUSTED: {
        "level": "department",
        "unit_key": "PWD",
        "day": "2026-11-02",
        "points": "-1.50",
        "reason": "complaint upheld",
        "approver": "chief:li",
    },
    t.OUTCOME_CORRECTED: {
        "item": "BOS-1",
        "period": "2026-11",
        "previous_deadline": DEADLINE,
        "deadline": DEADLINE,
        "previous_on_time": False,
        "on_time": True,
        "breaches_reversed": 1,
        "escalations_reversed": 1,
        "reason": "5 November was a holiday",
    },
    t.INTERVIEW_REQUIRED: {
        "period": "2026-11",
        "level": "department",
        "unit_key": "PWD",
        "rules": ["counter_at_least"],
        "reasons": ["6 breached in the month (the rule: at least 5)"],
        "scorebook_version": "2026.2",
    },
}


def envelope(event_type: str = t.ITEM_ACCEPTED, **changes: Any) -> EventEnvelope:
    event = EventEnvelope(
        event_id=make_event_id("BOS-1", 3),
        event_type=event_type,
        schema_version=SCHEMA_VERSION,
        item_id="BOS-1",
        sequence=3,
        occurred_at=T0,
        recorded_at=T0 + timedelta(seconds=2),
        actor="unit:PWDx",
        payload=dict(PAYLOADS[event_type]),
        correlation_id="item-BOS-1",
        causation_id="cmd-3",
    )
    return replace(event, **changes)


def as_dict(event_type: str = t.ITEM_ACCEPTED) -> dict[str, Any]:
    """A valid JSON-native envelope dict to break one field at a time."""
    return json.loads(encode_event(envelope(event_type)))


def rejected_field(data: Any) -> str:
    raw = data if isinstance(data, (bytes, str)) else json.dumps(data)
    with pytest.raises(EventValidationError) as info:
        decode_event(raw)
    assert info.value.reason  # every rejection says why
    return info.value.field


# --- round trips ---------------------------------------------------------------------------------


def test_payload_fixtures_cover_every_event_type() -> None:
    assert set(PAYLOADS) == set(t.EVENT_TYPES)
    for event_type, payload in PAYLOADS.items():
        assert set(payload) == set(t.EVENT_TYPES[event_type])


@pytest.mark.parametrize("event_type", sorted(t.EVENT_TYPES))
def test_every_event_type_round_trips(event_type: str) -> None:
    event = envelope(event_type)
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.occurred_at.tzinfo is not None
    assert encode_event(decoded) == encode_event(event)
    trusted = trusted_event(read_encoded(encode_event(event)))  # the projection's path for stored bytes
    assert trusted == event and trusted.occurred_at.tzinfo is UTC


@pytest.mark.parametrize("event_type", sorted(t.EVENT_TYPES))
def test_encoding_is_the_sorted_json_of_the_validated_fields(event_type: str) -> None:
    """The bytes every stored digest and chain was computed on: ``json.dumps`` of the envelope's
    JSON-native dict, keys sorted, non-ASCII kept, instants in UTC (also when given in another
    offset, with microseconds)."""
    plus8 = timezone(timedelta(hours=8))
    event = envelope(event_type)
    event = replace(event, occurred_at=(T0 + timedelta(microseconds=7)).astimezone(plus8), actor="unit:市政")
    expected = json.dumps(event_to_dict(event), sort_keys=True, ensure_ascii=False).encode()
    assert encode_event(event) == expected


def test_decode_accepts_str_and_bytes() -> None:
    raw = encode_event(envelope())
    assert decode_event(raw) == decode_event(raw.decode())


def test_datetimes_are_normalised_to_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    event = envelope(
        t.DEADLINE_BREACHED,
        occurred_at=T0.astimezone(shanghai),
        payload={"milestone": "resolution", "deadline": "2022-01-19T23:08:24+08:00"},
    )
    data = json.loads(encode_event(event))
    assert data["occurred_at"] == "2022-01-18T15:08:24+00:00"
    assert data["payload"]["deadline"] == DEADLINE
    decoded = decode_event(json.dumps(data))
    assert decoded.occurred_at == T0 and decoded.occurred_at.utcoffset() == timedelta(0)


def test_equal_events_encode_to_equal_bytes() -> None:
    a = envelope(t.ITEM_REGISTERED)
    b = envelope(t.ITEM_REGISTERED, payload=dict(reversed(list(PAYLOADS[t.ITEM_REGISTERED].items()))))
    assert a == b and a is not b
    assert encode_event(a) == encode_event(b)
    # the same instants written with another offset encode identically too
    plus8 = timezone(timedelta(hours=8))
    c = replace(a, occurred_at=a.occurred_at.astimezone(plus8), recorded_at=a.recorded_at.astimezone(plus8))
    assert encode_event(c) == encode_event(a)


def test_optional_payload_fields_accept_null() -> None:
    event = envelope(
        t.ITEM_CLOSED, payload={"on_time": None, "resolution_deadline": None, "handling_seconds": 0}
    )
    assert decode_event(encode_event(event)).payload["on_time"] is None


def test_event_to_dict_is_json_native() -> None:
    data = event_to_dict(envelope(t.ITEM_CLOSED))
    assert json.loads(json.dumps(data)) == data


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


# --- encoding validates too ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["occurred_at", "recorded_at"])
def test_encode_rejects_a_naive_datetime(name: str) -> None:
    changes: dict[str, Any] = {name: datetime(2022, 1, 18, 15, 8, 24)}
    event = replace(envelope(), **changes)
    with pytest.raises(EventValidationError) as info:
        encode_event(event)
    assert info.value.field == name


def test_encode_rejects_an_invalid_payload() -> None:
    event = envelope(t.ITEM_ESCALATED, payload={"milestone": "resolution", "level": "1", "rung": "x"})
    with pytest.raises(EventValidationError) as info:
        encode_event(event)
    assert info.value.field == "payload.level"


def test_encode_rejects_sequence_zero() -> None:
    with pytest.raises(EventValidationError) as info:
        encode_event(envelope(sequence=0))
    assert info.value.field == "sequence"


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


def test_event_ids_are_deterministic() -> None:
    assert make_event_id("BOS-1", 1) == make_event_id("BOS-1", 1)
    assert len({make_event_id("BOS-1", 1), make_event_id("BOS-1", 2), make_event_id("BOS-2", 1)}) == 3


def test_float_schema_version_is_rejected() -> None:
    data = as_dict()
    data["schema_version"] = 1.0
    assert rejected_field(data) == "schema_version"


def test_events_stored_before_a_field_was_added_decode_with_its_default() -> None:
    data = as_dict(t.ITEM_DISPATCHED)
    del data["payload"]["role"]
    assert decode_event(json.dumps(data)).payload == {"department": "PWD", "unit": "PWD-street", "role": ""}
    registered = as_dict(t.ITEM_REGISTERED)
    for name in ("urgency", "rulebook_version", "calendar", "order_id"):
        del registered["payload"][name]
    payload = decode_event(json.dumps(registered)).payload
    assert (payload["urgency"], payload["rulebook_version"], payload["order_id"]) == ("normal", "", "")
    for older in (data, registered):  # the trusted path of stored bytes fills them in alike
        raw = json.dumps(older).encode()
        assert trusted_event(read_encoded(raw)) == decode_event(raw)


def test_a_field_that_was_always_there_is_still_required() -> None:
    data = as_dict(t.ITEM_DISPATCHED)
    del data["payload"]["unit"]
    assert rejected_field(data) == "payload.unit"
