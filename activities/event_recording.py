"""The event-recording activity: append to the event store, then publish to Kafka keyed by item id.

The store is the system of record and is keyed by event id, so a retried activity stores each event
once. Every event of the call is (re)published: Kafka delivery is at-least-once and the projections
apply each event id once, so a republished event changes nothing downstream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer
from temporalio import activity
from temporalio.exceptions import ApplicationError

from duban.errors import EventValidationError
from events.codec import encode_event
from events.envelope import EventEnvelope
from events.store import EventStore

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_S = 30.0
"""Upper bound on one publish (ENGINEERING.md: wrap producer sends in a timeout)."""


@dataclass
class RecordEventsInput:
    """Events of one item, in sequence order, produced by one workflow step."""

    events: list[EventEnvelope] = field(default_factory=list)


@dataclass
class RecordEventsResult:
    """How many events were newly stored (0 on a retry) and how many were published."""

    stored: int
    published: int


class EventRecorder:
    """Holds the store and the producer; ``record_events`` is the activity (register the bound method).

    Args:
        store: the SQL event store (system of record).
        producer: a started ``AIOKafkaProducer``, or ``None`` to store without publishing.
        topic: the events topic.
    """

    def __init__(self, store: EventStore, producer: AIOKafkaProducer | None, topic: str) -> None:
        self.store = store
        self.producer = producer
        self.topic = topic
        self.recorded = 0

    @activity.defn(name="record_events")
    async def record_events(self, input: RecordEventsInput) -> RecordEventsResult:
        """Append ``input.events`` to the store (stamping ``recorded_at``), then publish them.

        Raises:
            EventValidationError: an event is malformed (non-retryable: the workflow code is wrong).
            asyncio.TimeoutError / KafkaError: publishing failed; Temporal retries the activity.
        """
        now = datetime.now(UTC)
        events = [replace(e, recorded_at=now) for e in input.events]
        try:
            encoded = [encode_event(e) for e in events]  # validates before anything is stored
        except EventValidationError as exc:
            raise ApplicationError(str(exc), type="EventValidationError", non_retryable=True) from exc
        stored = await asyncio.to_thread(self.store.append, events)
        published = 0
        if self.producer is not None:
            futures = [
                await self.producer.send(self.topic, value=raw, key=e.item_id.encode())
                for e, raw in zip(events, encoded, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*futures), PUBLISH_TIMEOUT_S)
            published = len(futures)
        self.recorded += stored
        return RecordEventsResult(stored=stored, published=published)
