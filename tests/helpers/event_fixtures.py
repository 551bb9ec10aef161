"""Event envelopes of every type, valid, to break one field at a time (the codec's tests)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import types as t
from events.codec import decode_event, encode_event
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from events.errors import EventValidationError

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
