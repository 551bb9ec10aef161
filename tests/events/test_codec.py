"""The JSON codec of event envelopes: round trips of every event type, and encoding validates."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from helpers.event_fixtures import DEADLINE, PAYLOADS, T0, as_dict, envelope, rejected_field

from events import types as t
from events.codec import decode_event, encode_event, event_to_dict, read_encoded, trusted_event
from events.envelope import make_event_id
from events.errors import EventValidationError

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
