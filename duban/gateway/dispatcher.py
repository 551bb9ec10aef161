"""The webhook dispatcher: every stored event a subscription selects becomes a delivery workflow.

It reads the event store — not the events topic: the store is the only source the gateway trusts,
and a broker that restarted empty cannot make it skip anything — in store order, from a watermark.
For each event it finds the subscriptions that select it (``workflows.webhook_model.matches``, on the
item's department then, its town and its registering integrator; only subscriptions created at or
before the event was recorded), starts ``WebhookDeliveryWorkflow`` for each (id
``webhook-<subscription>-<event>``: a second start of the same delivery is a no-op, so two gateways
may run dispatchers side by side), and only then marks the event dispatched.

Positions as on PostgreSQL: a row can become visible after a row with a higher position, so, as the
projection does (``projections.store_sync``), the dispatcher keeps the ids it has dispatched past its
watermark and never moves the watermark past an event recorded in the last ``settle_s`` seconds.
Ids at or below the watermark are pruned, so the table stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    exists,
    func,
    select,
)
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.webhooks import SubscriptionNotFound, WebhookStore
from duban.config import Settings
from duban.gateway.keys import KeyStore
from events import types as t
from events.errors import ValidationError
from events.sql import create_schema, insert_ignoring_duplicates, make_engine, upsert
from events.store import stored_events
from workflows.payload_converter import DATA_CONVERTER
from workflows.webhook_delivery import WebhookDeliveryWorkflow
from workflows.webhook_model import (
    DeliveryInput,
    ItemPlace,
    RetrySchedule,
    Subscription,
    delivery_workflow_id,
    matches,
)

log = structlog.get_logger("duban.webhooks")
metadata = MetaData()
webhook_dispatched = Table(
    "webhook_dispatched",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("position", BigInteger().with_variant(Integer, "sqlite"), nullable=False, index=True),
)
webhook_watermark = Table(
    "webhook_watermark",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("position", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
)
SETTLE_S = 300.0
"""As ``projections.store_sync.SETTLE_S``: longer than any append transaction."""
BATCH = 500
PLACES_CACHED = 100_000
STARTS_IN_FLIGHT = 32
_es, _wd = stored_events.c, webhook_dispatched.c
NO_PLACE = ItemPlace("", "", "")


def _apply(place: ItemPlace | None, event_type: str, payload: dict[str, Any]) -> ItemPlace | None:
    """The item's place after one of its events (``None`` before its registration)."""
    if event_type == t.ITEM_REGISTERED:
        return ItemPlace(str(payload["department"]), str(payload["town"]), str(payload["source"]))
    if place is not None and event_type == t.ITEM_DISPATCHED and payload.get("department"):
        return ItemPlace(str(payload["department"]), place.town, place.source)
    return place


class WebhookDispatcher:
    """Starts delivery workflows for the stored events that subscriptions select (module docstring).

    ``retry`` is passed to every delivery; ``task_queue`` is the worker's (``duban worker`` runs
    ``WebhookDeliveryWorkflow`` and its activities)."""

    def __init__(
        self,
        engine: Engine,
        client: Client,
        task_queue: str,
        retry: RetrySchedule,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.engine, self.client, self.task_queue, self.retry = engine, client, task_queue, retry
        self.settle_s = settle_s
        self.webhooks = WebhookStore(engine)
        self._places: OrderedDict[str, ItemPlace | None] = OrderedDict()
        self.started = 0

    def create(self) -> None:
        """Create the dispatcher's and the subscriptions' tables (idempotent)."""
        self.webhooks.create()
        create_schema(self.engine, metadata)

    def watermark(self) -> int:
        with self.engine.connect() as conn:
            query = select(webhook_watermark.c.position).where(webhook_watermark.c.name == "dispatcher")
            return int(conn.execute(query).scalar() or 0)

    def _subscriptions(self) -> list[Subscription]:
        """The active subscriptions of integrators that hold a valid key: revoking an integrator's
        last key stops its deliveries (those already being retried finish)."""
        valid = {k.integrator for k in KeyStore(self.engine).list() if k.revoked_at is None}
        return [s for s in self.webhooks.active() if s.integrator in valid]

    def _pending(self, after: int) -> list[Any]:
        query = (
            select(stored_events)
            .where(_es.position > after, ~exists().where(_wd.event_id == _es.event_id))
            .order_by(_es.position)
            .limit(BATCH)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def _place_before(self, item_id: str, position: int) -> ItemPlace | None:
        query = (
            select(_es.event_type, _es.payload)
            .where(_es.item_id == item_id, _es.position < position)
            .order_by(_es.position)
        )
        place: ItemPlace | None = None
        with self.engine.connect() as conn:
            for event_type, payload in conn.execute(query):
                place = _apply(place, event_type, json.loads(payload))
        return place

    def place_of(self, row: Any) -> ItemPlace:
        """The place of ``row``'s item once ``row``'s event has happened (cached per item)."""
        if row.item_id in self._places:
            self._places.move_to_end(row.item_id)
            place = self._places[row.item_id]
        else:
            place = self._place_before(row.item_id, row.position)
        place = _apply(place, row.event_type, json.loads(row.payload))
        self._places[row.item_id] = place
        if len(self._places) > PLACES_CACHED:
            self._places.popitem(last=False)
        return place or NO_PLACE

    async def start(self, sub: Subscription, event_id: str, redelivery: int = 0) -> bool:
        """Start the delivery of ``event_id`` to ``sub``; False if that workflow id was used before."""
        try:
            await self.client.start_workflow(
                WebhookDeliveryWorkflow.run,
                DeliveryInput(sub.subscription_id, event_id, self.retry),
                id=delivery_workflow_id(sub.subscription_id, event_id, redelivery),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            return False
        self.started += 1
        return True

    async def dispatch_once(self, now: datetime | None = None) -> int:
        """One round: start the deliveries of up to ``BATCH`` undispatched events, mark them, move
        the watermark; returns how many events were handled."""
        now = now or datetime.now(UTC)
        mark = await asyncio.to_thread(self.watermark)
        rows, subs = await asyncio.to_thread(lambda: (self._pending(mark), self._subscriptions()))
        starts: list[tuple[Subscription, str]] = []
        for row in rows:
            place = self.place_of(row)
            for sub in subs:
                if sub.created_at <= row.recorded_at and matches(sub, row.event_type, row.item_id, place):
                    starts.append((sub, row.event_id))
        gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

        async def one(sub: Subscription, event_id: str) -> None:
            async with gate:
                await self.start(sub, event_id)

        await asyncio.gather(*(one(sub, event_id) for sub, event_id in starts))
        await asyncio.to_thread(self._mark, rows, now)
        return len(rows)

    def _mark(self, rows: list[Any], now: datetime) -> None:
        with self.engine.begin() as conn:
            if rows:
                marked = [{"event_id": r.event_id, "position": r.position} for r in rows]
                conn.execute(
                    insert_ignoring_duplicates(self.engine, webhook_dispatched, ["event_id"]), marked
                )
            mark = int(
                conn.execute(
                    select(webhook_watermark.c.position).where(webhook_watermark.c.name == "dispatcher")
                ).scalar()
                or 0
            )
            first_open = conn.execute(
                select(func.min(_es.position)).where(
                    _es.position > mark, ~exists().where(_wd.event_id == _es.event_id)
                )
            ).scalar()
            settled = conn.execute(
                select(func.max(_es.position)).where(
                    _es.position > mark, _es.recorded_at < now - timedelta(seconds=self.settle_s)
                )
            ).scalar()
            if settled is None:
                return
            new = int(settled) if first_open is None else min(int(settled), int(first_open) - 1)
            if new > mark:
                upsert(
                    conn,
                    webhook_watermark,
                    ["name"],
                    [{"name": "dispatcher", "position": new}],
                    lambda _, excluded: {"position": excluded.position},
                )
                conn.execute(delete(webhook_dispatched).where(_wd.position <= new))

    async def run(self, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        """Dispatch until ``stop`` is set; a round that fails (a database or Temporal that does not
        answer) is logged and tried again after ``poll_s``."""
        await asyncio.to_thread(self.create)
        log.info("webhooks.dispatcher_started", task_queue=self.task_queue)
        while not stop.is_set():
            handled = 0
            try:
                handled = await self.dispatch_once()
            except Exception as exc:  # keep dispatching: every round starts from the store again
                log.warning("webhooks.dispatch_failed", error=repr(exc)[:300])
            if handled < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_s)


async def redeliver_parked(settings: Settings, subscription_id: str, event_id: str | None = None) -> int:
    """Start parked deliveries of ``subscription_id`` again (only ``event_id``'s when given, parked
    or not), each as a new workflow ``webhook-<sub>-<event>-r<unix seconds>``; the number started.

    Raises:
        SubscriptionNotFound: no active subscription ``subscription_id``.
        ValidationError: ``event_id`` was never delivered to it.
    """
    engine = make_engine(settings.database)
    try:
        store = WebhookStore(engine)
        store.create()
        found = store.get(subscription_id)
        if found is None or found[0].removed_at is not None:
            raise SubscriptionNotFound(f"no active subscription {subscription_id!r}")
        if event_id is not None:
            if store.delivery(subscription_id, event_id) is None:
                raise ValidationError("event", f"{event_id!r} was never delivered to {subscription_id}")
            events = [event_id]
        else:
            events = [r["event_id"] for r in store.deliveries(subscription_id, "parked", 100_000)]
        client = await Client.connect(
            settings.temporal_target, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
        )
        retry = RetrySchedule(
            settings.webhook_retry_initial_s,
            settings.webhook_retry_max_interval_s,
            settings.webhook_give_up_after_s,
        )
        dispatcher = WebhookDispatcher(engine, client, settings.task_queue, retry)
        again = int(time.time())
        started = 0
        for event in events:
            store.record(subscription_id, event, "pending", 0, "redelivery started by an operator", False)
            started += await dispatcher.start(found[0], event, redelivery=again)
        return started
    finally:
        engine.dispose()
