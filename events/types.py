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
    },
    ITEM_DISPATCHED: {"department": STR, "unit": STR},
    ITEM_ACCEPTED: {"unit": STR},
    RECTIFICATION_SUBMITTED: {"unit": STR, "notes": STR, "evidence": STR_LIST},
    RECTIFICATION_VERIFIED: {"passed": BOOL, "notes": STR},
    ITEM_CLOSED: {"on_time": OPT_BOOL, "resolution_deadline": OPT_DATETIME, "handling_seconds": INT},
    ITEM_CANCELLED: {"reason": STR},
    DEADLINE_WARNED: {"milestone": STR, "deadline": DATETIME, "threshold": STR},
    DEADLINE_BREACHED: {"milestone": STR, "deadline": DATETIME},
    ITEM_ESCALATED: {"milestone": STR, "level": INT, "rung": STR},
}
"""Payload schema of every event type (all at ``envelope.SCHEMA_VERSION``)."""

MILESTONES: Final = ("response", "resolution")
"""Deadline milestones: respond (accept) by, resolve (close out) by."""
