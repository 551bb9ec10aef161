"""The event-recording activity: append to the event store, then publish to Kafka keyed by item id.

The store is the system of record and is keyed by event id, so a retried activity stores each event
once. What is published is exactly what the store holds: on a retry, the events stored by an earlier
attempt are published with the ``recorded_at`` of their first recording, never a new one (a closed
period counts an event by the time it was recorded). Kafka delivery is at-least-once and the
projection applies each event id once, so a republished event changes nothing downstream; an event
that never reaches the topic (a broker that lost it) is caught up from the store by the projection.

Failures that retrying cannot mend are non-retryable: an event the codec refuses
(``EventValidationError``), an event id stored with other content (``EventConflict``) and a value the
database refuses (``EventStoreRefused``; the bounds of ``events.bounds`` make it unreachable).
Anything else (database or broker unavailable) is retried by Temporal until it succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.append_batching import AppendBatcher
from events.codec import encode_event
from events.envelope import EventEnvelope
from events.errors import EventValidationError
from events.store import EventConflict, EventStore
from workflows.activity_contracts import RecordEventsInput, RecordEventsResult

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_S = 30.0
"""Upper bound on one publish (ENGINEERING.md: wrap producer sends in a timeout)."""


class EventRecorder:
    """Holds the store and the producer; ``record_events`` is the activity (register the bound method).
    Concurrent activities share store transactions (``activities.append_batching``).

    Args:
        store: the SQL event store (system of record).
        producer: a started ``AIOKafkaProducer``, or ``None`` to store without publishing.
        topic: the events topic.
        ensure_topics: called after a failed publish (before the activity is retried), to recreate
            the topics a restarted broker lost; ``None`` to skip.
        publish_timeout_s: how long one publish may take (seconds) before it counts as failed.
    """

    def __init__(
        self,
        store: EventStore,
        producer: AIOKafkaProducer | None,
        topic: str,
        ensure_topics: Callable[[], Awaitable[Any]] | None = None,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        self.publish_timeout_s = publish_timeout_s
        self.store = store
        self.appends = AppendBatcher(store)
        self.producer = producer
        self.topic = topic
        self.ensure_topics = ensure_topics
        self.recorded = 0

    @activity.defn(name="record_events")
    async def record_events(self, input: RecordEventsInput) -> RecordEventsResult:
        """Append ``input.events`` to the store (stamping ``recorded_at``), then publish them as stored.

        Raises:
            ApplicationError: non-retryable, of type ``EventValidationError``, ``EventConflict`` or
                ``EventStoreRefused`` (see the module docstring).
            asyncio.TimeoutError / KafkaError / sqlalchemy errors: retried by Temporal.
        """
        now = datetime.now(UTC)
        events = [replace(e, recorded_at=now) for e in input.events]
        try:
            encoded = [encode_event(e) for e in events]  # validates before anything is stored
        except EventValidationError as exc:
            raise ApplicationError(str(exc), type="EventValidationError", non_retryable=True) from exc
        try:
            new, stored = await self.appends.record(events, encoded)
        except EventConflict as exc:
            raise ApplicationError(str(exc), type="EventConflict", non_retryable=True) from exc
        except StatementError as exc:
            refused = isinstance(exc, DataError) or (
                not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError)
            )
            if not refused:
                raise
            reason = f"the event store refused the events: {exc}"
            raise ApplicationError(reason, type="EventStoreRefused", non_retryable=True) from exc
        published = await self._publish(events, stored)
        self.recorded += new
        local = activity.in_activity() and activity.info().is_local
        return RecordEventsResult(stored=new, published=published, events=events if local else [])

    async def _publish(self, events: list[EventEnvelope], stored: list[bytes]) -> int:
        if self.producer is None:
            return 0
        producer = self.producer

        async def send_all() -> int:
            futures = [
                await producer.send(self.topic, value=raw, key=e.item_id.encode())
                for e, raw in zip(events, stored, strict=True)
            ]
            await asyncio.gather(*futures)
            return len(futures)

        try:  # a topic the broker lost waits for metadata: bounded by the timeout too
            return await asyncio.wait_for(send_all(), self.publish_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            log.warning("record_events.publish_failed", topic=self.topic, error=repr(exc))
            if self.ensure_topics is not None:
                try:
                    await self.ensure_topics()
                except Exception as again:  # the broker is still away: the retry will try again
                    log.warning("record_events.ensure_topics_failed", error=repr(again))
            raise
