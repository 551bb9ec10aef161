"""Building the events of one item: numbered in order, ids derived from (item id, sequence)."""

from __future__ import annotations

from datetime import datetime

from events.codec import format_utc
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from workflows.item_model import ItemCommand, ItemState

SYSTEM_TIMER_ACTOR = "system:timer"


def emit(
    state: ItemState, event_type: str, at: datetime, actor: str, cause: str, **payload: object
) -> EventEnvelope:
    """The item's next event (``state.sequence`` is advanced). ``recorded_at`` equals ``at`` here; the
    recording activity stamps the real time. ``cause`` is the command id or the timer that caused it."""
    state.sequence += 1
    return EventEnvelope(
        event_id=make_event_id(state.item_id, state.sequence),
        event_type=event_type,
        schema_version=SCHEMA_VERSION,
        item_id=state.item_id,
        sequence=state.sequence,
        occurred_at=at,
        recorded_at=at,
        actor=actor,
        payload=dict(payload),
        correlation_id=f"item-{state.item_id}",
        causation_id=cause,
    )


def command_event(state: ItemState, cmd: ItemCommand, event_type: str, **payload: object) -> EventEnvelope:
    """The next event of the item, caused by ``cmd``: dated when it happened, by its actor."""
    return emit(state, event_type, cmd.occurred_at, cmd.actor, cmd.command_id, **payload)


def utc_or_none(value: datetime | None) -> str | None:
    """An aware datetime as an ISO string with offset, or ``None``."""
    return format_utc(value) if value is not None else None
