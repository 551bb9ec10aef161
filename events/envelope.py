"""The event envelope: what every domain event carries, whatever its type.

Events are immutable facts in the past tense. The envelope travels as a frozen dataclass inside the
system (Temporal payloads, activities) and as JSON on Kafka and in the event store (``events.codec``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1
"""Schema version of every event type defined in ``events.types``; bump per type when its payload changes."""

EVENT_ID_NAMESPACE = uuid.UUID("6f2d3c1e-8a4b-5d7e-9f10-2b3c4d5e6f70")
"""uuid5 namespace of event ids (a constant chosen for duban; never change it, ids would change)."""


def make_event_id(item_id: str, sequence: int) -> str:
    """Deterministic event id of the ``sequence``-th event (1-based) of an item.

    Derived from the item id and the position in the item's stream, never from randomness, so a
    retried activity or a replayed workflow produces the same id and the store keeps the event once.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{item_id}/{sequence}"))


@dataclass(frozen=True)
class EventEnvelope:
    """A domain event.

    Attributes:
        event_id: globally unique id (``make_event_id``); the event store's key.
        event_type: a name from ``events.types.EVENT_TYPES`` (past tense, e.g. ``"ItemClosed"``).
        schema_version: version of that type's payload schema.
        item_id: the supervision item; also the Kafka message key (one partition per item).
        sequence: 1-based position of this event in the item's stream (the item's version).
        occurred_at: when it happened in the world, aware UTC (historical time for imported cases).
        recorded_at: when duban recorded it, aware UTC.
        actor: who caused it (``"unit:PWDx"``, ``"inspector:…"``, ``"system:timer"``).
        payload: JSON-native dict (datetimes as ISO-8601 UTC strings) validated per ``event_type``.
        correlation_id: the conversation it belongs to (the item's workflow id).
        causation_id: the command id or event id that caused it.
    """

    event_id: str
    event_type: str
    schema_version: int
    item_id: str
    sequence: int
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    payload: dict[str, Any] = field(default_factory=dict)
    correlation_id: str = ""
    causation_id: str = ""
