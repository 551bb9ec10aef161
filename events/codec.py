"""JSON codec of event envelopes: encode for Kafka and the event store, decode with validation.

``decode_event`` rejects anything malformed with :class:`duban.errors.EventValidationError` naming the
offending field (``"occurred_at"``, ``"payload.deadline"`` …) and the reason; it never returns a
half-valid event.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from duban.errors import EventValidationError
from events import types as t
from events.envelope import SCHEMA_VERSION, EventEnvelope

_ENVELOPE_STR = ("event_id", "event_type", "item_id", "actor", "correlation_id", "causation_id")


def format_utc(value: datetime) -> str:
    """ISO-8601 string of an aware datetime, converted to UTC (``2022-01-18T15:08:24+00:00``).

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: duban stores only aware UTC datetimes")
    return value.astimezone(UTC).isoformat()


def parse_utc(value: Any, field: str) -> datetime:
    """Parse an ISO-8601 string with an explicit offset into an aware UTC datetime.

    Raises:
        EventValidationError: not a string, not ISO-8601, or without a UTC offset.
    """
    if not isinstance(value, str):
        raise EventValidationError(field, f"must be an ISO-8601 datetime string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventValidationError(field, f"is not an ISO-8601 datetime: {value!r}") from None
    if parsed.tzinfo is None:
        raise EventValidationError(field, f"has no UTC offset (naive datetimes are refused): {value!r}")
    return parsed.astimezone(UTC)


def validate_payload(event_type: str, payload: Any) -> dict[str, Any]:
    """Check a payload against its type's schema; return it with datetimes normalised to UTC strings.

    Raises:
        EventValidationError: unknown field, missing field or a value of the wrong kind.
    """
    schema = t.EVENT_TYPES[event_type]
    if not isinstance(payload, dict):
        raise EventValidationError("payload", f"must be an object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - set(schema))
    if unknown:
        raise EventValidationError(f"payload.{unknown[0]}", f"is not a field of {event_type}")
    out: dict[str, Any] = {}
    for name, kind in schema.items():
        field = f"payload.{name}"
        if name not in payload:
            if name in t.ADDED_FIELDS.get(event_type, {}):
                out[name] = t.ADDED_FIELDS[event_type][name]
                continue
            raise EventValidationError(field, f"is required by {event_type}")
        value = payload[name]
        optional = kind.endswith("?")
        if value is None:
            if not optional:
                raise EventValidationError(field, "must not be null")
            out[name] = None
            continue
        base = kind.rstrip("?")
        if base == t.STR and not isinstance(value, str):
            raise EventValidationError(field, f"must be a string, got {type(value).__name__}")
        if base == t.BOOL and not isinstance(value, bool):
            raise EventValidationError(field, f"must be true or false, got {value!r}")
        if base == t.INT and (isinstance(value, bool) or not isinstance(value, int)):
            raise EventValidationError(field, f"must be an integer, got {value!r}")
        if base == t.STR_LIST and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise EventValidationError(field, "must be a list of strings")
        out[name] = format_utc(parse_utc(value, field)) if base == t.DATETIME else value
    return out


def event_to_dict(event: EventEnvelope) -> dict[str, Any]:
    """The JSON-native dict of an envelope (datetimes as UTC ISO strings)."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "item_id": event.item_id,
        "sequence": event.sequence,
        "occurred_at": format_utc(event.occurred_at),
        "recorded_at": format_utc(event.recorded_at),
        "actor": event.actor,
        "payload": event.payload,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
    }


def encode_event(event: EventEnvelope) -> bytes:
    """UTF-8 JSON bytes of an envelope, keys sorted so equal events encode to equal bytes.

    Raises:
        EventValidationError: the envelope itself is invalid (validated before encoding).
    """
    return json.dumps(event_to_dict(validate_event(event)), sort_keys=True, ensure_ascii=False).encode()


def validate_event(event: EventEnvelope) -> EventEnvelope:
    """Validate an in-memory envelope the same way ``decode_event`` validates JSON; return it normalised."""
    return event_from_dict(event_to_dict_unchecked(event))


def event_to_dict_unchecked(event: EventEnvelope) -> dict[str, Any]:
    """Like ``event_to_dict`` but leaves datetimes as they are, so validation can name bad ones."""
    data = dict(event.__dict__)
    for name in ("occurred_at", "recorded_at"):
        value = data[name]
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise EventValidationError(name, "is a naive datetime; duban needs aware UTC")
            data[name] = format_utc(value)
    return data


def event_from_dict(data: Any) -> EventEnvelope:
    """Build an envelope from a JSON-native dict, validating every field.

    Raises:
        EventValidationError: names the first offending field and the reason.
    """
    if not isinstance(data, dict):
        raise EventValidationError("event", f"must be a JSON object, got {type(data).__name__}")
    for name in _ENVELOPE_STR:
        if name not in data:
            raise EventValidationError(name, "is required")
        if not isinstance(data[name], str):
            raise EventValidationError(name, f"must be a string, got {type(data[name]).__name__}")
    for name in ("event_id", "event_type", "item_id", "actor"):
        if not data[name].strip():
            raise EventValidationError(name, "must not be empty")
    if data["event_type"] not in t.EVENT_TYPES:
        raise EventValidationError("event_type", f"unknown event type {data['event_type']!r}")
    version = data.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise EventValidationError("schema_version", f"must be {SCHEMA_VERSION}, got {version!r}")
    sequence = data.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise EventValidationError("sequence", f"must be a positive integer, got {sequence!r}")
    extra = sorted(
        set(data) - {*_ENVELOPE_STR, "schema_version", "sequence", "occurred_at", "recorded_at", "payload"}
    )
    if extra:
        raise EventValidationError(extra[0], "is not an envelope field")
    return EventEnvelope(
        event_id=data["event_id"],
        event_type=data["event_type"],
        schema_version=version,
        item_id=data["item_id"],
        sequence=sequence,
        occurred_at=parse_utc(data.get("occurred_at"), "occurred_at"),
        recorded_at=parse_utc(data.get("recorded_at"), "recorded_at"),
        actor=data["actor"],
        payload=validate_payload(data["event_type"], data.get("payload")),
        correlation_id=data["correlation_id"],
        causation_id=data["causation_id"],
    )


def decode_event(raw: bytes | str) -> EventEnvelope:
    """Decode and validate one event from JSON.

    Raises:
        EventValidationError: not UTF-8 JSON (field ``"event"``), or any field invalid.
    """
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventValidationError("event", f"is not valid UTF-8 JSON: {exc}") from None
    return event_from_dict(data)
