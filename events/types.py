"""The event types of the supervision-item lifecycle and the schema of each payload.

Each schema maps a payload field to its kind; ``events.codec`` validates against it and names the
field on failure. Datetimes in payloads are ISO-8601 strings with an explicit UTC offset.
"""

from __future__ import annotations

from typing import Final

# Field kinds understood by the codec.
STR: Final = "str"
OPT_STR: Final = "str?"
INT: Final = "int"
BOOL: Final = "bool"
OPT_BOOL: Final = "bool?"
DATETIME: Final = "datetime"
OPT_DATETIME: Final = "datetime?"
STR_LIST: Final = "list[str]"

ITEM_REGISTERED: Final = "ItemRegistered"
ITEM_DISPATCHED: Final = "ItemDispatched"
ITEM_ACCEPTED: Final = "ItemAccepted"
RECTIFICATION_SUBMITTED: Final = "RectificationSubmitted"
RECTIFICATION_VERIFIED: Final = "RectificationVerified"
ITEM_CLOSED: Final = "ItemClosed"
ITEM_CANCELLED: Final = "ItemCancelled"
DEADLINE_WARNED: Final = "DeadlineWarned"
DEADLINE_BREACHED: Final = "DeadlineBreached"
ITEM_ESCALATED: Final = "ItemEscalated"
ITEM_RETURNED: Final = "ItemReturned"
REWORK_ORDERED: Final = "ReworkOrdered"
EXTENSION_REQUESTED: Final = "ExtensionRequested"
EXTENSION_APPROVED: Final = "ExtensionApproved"
EXTENSION_REJECTED: Final = "ExtensionRejected"
ITEM_SUSPENDED: Final = "ItemSuspended"
ITEM_RESUMED: Final = "ItemResumed"
SUSPENSION_REVIEW_DUE: Final = "SuspensionReviewDue"
ITEM_MERGED: Final = "ItemMerged"
TRAFFIC_LIGHT_CHANGED: Final = "TrafficLightChanged"
GRID_CALL_PLACED: Final = "GridCallPlaced"
DEPARTMENT_REPORTED_IN: Final = "DepartmentReportedIn"
REPORT_IN_OVERDUE: Final = "ReportInOverdue"
RESPONDER_RATED: Final = "ResponderRated"
SCORE_ADJUSTED: Final = "ScoreAdjusted"
INTERVIEW_REQUIRED: Final = "InterviewRequired"
OUTCOME_CORRECTED: Final = "OutcomeCorrected"

EVENT_TYPES: Final[dict[str, dict[str, str]]] = {
    ITEM_REGISTERED: {
        "category": STR,
        "category_group": STR,
        "department": STR,
        "unit": STR,
        "town": STR,
        "community": STR,
        "grid": STR,
        "zone": STR,
        "source": STR,
        "response_deadline": OPT_DATETIME,
        "resolution_deadline": OPT_DATETIME,
        "deadline_origin": STR,
        "urgency": STR,
        "rulebook_version": STR,
        "calendar": STR,
        "order_id": STR,
        "district": STR,
    },
    ITEM_DISPATCHED: {"department": STR, "unit": STR, "role": STR},
    ITEM_ACCEPTED: {"unit": STR, "role": STR},
    RECTIFICATION_SUBMITTED: {"unit": STR, "notes": STR, "evidence": STR_LIST, "location": STR, "role": STR},
    RECTIFICATION_VERIFIED: {"passed": BOOL, "notes": STR, "role": STR},
    ITEM_CLOSED: {
        "on_time": OPT_BOOL,
        "resolution_deadline": OPT_DATETIME,
        "handling_seconds": INT,
        "role": STR,
    },
    ITEM_CANCELLED: {"reason": STR, "role": STR},
    DEADLINE_WARNED: {"milestone": STR, "deadline": DATETIME, "threshold": STR},
    DEADLINE_BREACHED: {"milestone": STR, "deadline": DATETIME},
    ITEM_ESCALATED: {"milestone": STR, "level": INT, "rung": STR},
    ITEM_RETURNED: {
        "unit": STR,
        "department": STR,
        "dispatched_by": STR,
        "reason": STR,
        "role": STR,
        "redispatch_count": INT,
    },
    REWORK_ORDERED: {"unit": STR, "episode": INT, "reason": STR},
    EXTENSION_REQUESTED: {
        "milestone": STR,
        "current_deadline": DATETIME,
        "requested_deadline": DATETIME,
        "reason": STR,
        "role": STR,
        "extension_number": INT,
    },
    EXTENSION_APPROVED: {
        "milestone": STR,
        "previous_deadline": DATETIME,
        "deadline": DATETIME,
        "extension_number": INT,
        "role": STR,
        "reason": STR,
    },
    EXTENSION_REJECTED: {
        "milestone": STR,
        "requested_deadline": DATETIME,
        "extension_number": INT,
        "role": STR,
        "reason": STR,
    },
    ITEM_SUSPENDED: {"reason": STR, "role": STR, "remaining_seconds": INT, "basis": STR},
    ITEM_RESUMED: {
        "role": STR,
        "reason": STR,
        "suspended_seconds": INT,
        "response_deadline": OPT_DATETIME,
        "resolution_deadline": OPT_DATETIME,
    },
    SUSPENSION_REVIEW_DUE: {"suspended_since": DATETIME, "review": INT},
    ITEM_MERGED: {"into_item_id": STR, "reason": STR, "role": STR},
    TRAFFIC_LIGHT_CHANGED: {"milestone": STR, "light": STR, "previous": STR, "deadline": DATETIME},
    GRID_CALL_PLACED: {"departments": STR_LIST, "report_in_deadline": DATETIME, "reason": STR, "role": STR},
    DEPARTMENT_REPORTED_IN: {"department": STR, "late": BOOL, "report_in_deadline": DATETIME, "role": STR},
    REPORT_IN_OVERDUE: {"department": STR, "report_in_deadline": DATETIME},
    RESPONDER_RATED: {"department": STR, "rating": INT, "notes": STR},
    SCORE_ADJUSTED: {
        "level": STR,
        "unit_key": STR,
        "day": STR,
        "points": STR,
        "reason": STR,
        "approver": STR,
    },
    OUTCOME_CORRECTED: {
        "item": STR,
        "period": STR,
        "previous_deadline": OPT_DATETIME,
        "deadline": OPT_DATETIME,
        "previous_on_time": OPT_BOOL,
        "on_time": OPT_BOOL,
        "breaches_reversed": INT,
        "escalations_reversed": INT,
        "reason": STR,
    },
    INTERVIEW_REQUIRED: {
        "period": STR,
        "level": STR,
        "unit_key": STR,
        "rules": STR_LIST,
        "reasons": STR_LIST,
        "scorebook_version": STR,
    },
}
"""Payload schema of every event type (all at ``envelope.SCHEMA_VERSION``). ``ScoreAdjusted`` and
``InterviewRequired`` are not about an item (``NON_ITEM_EVENTS``): their ``item_id`` is
``score-adjustment:<adjustment id>`` or ``interview:<period>:<level>:<digest>`` (one event each).
``OutcomeCorrected`` (an SLA repair, ``duban audit recompute --apply``) corrects the item named in
its payload from a stream of its own, ``correction:<period>:<digest>``, so the item's own stream,
which its workflow writes, is never touched."""

NON_ITEM_EVENTS: Final = frozenset({SCORE_ADJUSTED, INTERVIEW_REQUIRED, OUTCOME_CORRECTED})
"""Event types recorded by the office about units, not items: the projection applies each alone."""

ADDED_FIELDS: Final[dict[str, dict[str, object]]] = {
    ITEM_REGISTERED: {
        "urgency": "normal",
        "rulebook_version": "",
        "calendar": "",
        "order_id": "",
        "district": "",
    },
    ITEM_DISPATCHED: {"role": ""},
    ITEM_ACCEPTED: {"role": ""},
    RECTIFICATION_SUBMITTED: {"location": "", "role": ""},
    RECTIFICATION_VERIFIED: {"role": ""},
    ITEM_CLOSED: {"role": ""},
    ITEM_CANCELLED: {"role": ""},
}
"""Fields added to a type after events of it were stored, with the value an older event implies.

A weak-schema upcast: decoding an older event fills them in, so every consumer sees one shape and
stored history never needs rewriting (a change that cannot be expressed this way needs a new
``SCHEMA_VERSION`` and an upcaster)."""

MILESTONES: Final = ("response", "resolution")
"""Deadline milestones: respond (accept) by, resolve (close out) by."""
