"""The activities the workflows call, as contracts: name, input and result, and a typed stub.

Workflows call these stubs by reference (``workflow.execute_activity(record_events, …)``), so the
activity's name and its result type are checked by mypy and the workflow modules import nothing with
SQL or Kafka in it; the worker registers the implementations in ``activities/`` under the same names
(``tests`` check that each implementation's signature matches its contract). A stub's body never
runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

from events.envelope import EventEnvelope
from workflows.order_model import OrderPage, OrderPageInput
from workflows.webhook_model import DeliveryAttempt, DeliveryInput, ParkInput


@dataclass
class RecordEventsInput:
    """Events of one item, in sequence order, produced by one workflow step."""

    events: list[EventEnvelope] = field(default_factory=list)


@dataclass
class RecordEventsResult:
    """How many events were newly stored (0 on a retry) and how many were published; run as a local
    activity, ``events`` are the events recorded (so the history's marker holds what the step
    recorded, as an activity's input does; empty otherwise)."""

    stored: int
    published: int
    events: list[EventEnvelope] = field(default_factory=list)


@dataclass
class PeriodClosed:
    """The period closed and its snapshot's proof: events counted and their hash; ``documents`` the
    documents made after the close (``"<id> <format> sha256:<hex>"``, none for a daily close)."""

    period: str
    events_count: int
    events_hash: str
    scorebook_version: str
    documents: list[str] = field(default_factory=list)


@dataclass
class ProduceDocumentsInput:
    """Make the notice of closed ``period`` of ``cadence`` (weekly, half-monthly, monthly)."""

    cadence: str
    period: str


@activity.defn(name="record_events")
async def record_events(input: RecordEventsInput) -> RecordEventsResult:
    """Append the events to the event store, then publish them as stored (implemented by
    ``activities.event_recording.EventRecorder.record_events``)."""
    raise NotImplementedError("a contract: the worker runs activities.event_recording")


@activity.defn(name="item_registered")
async def item_registered(item_id: str) -> bool:
    """Whether the event store holds ``item_id``'s registration (a merge target must exist;
    implemented by ``activities.item_lookup.ItemLookup.item_registered``)."""
    raise NotImplementedError("a contract: the worker runs activities.item_lookup")


@activity.defn(name="start_order_page")
async def start_order_page(page: OrderPageInput) -> OrderPage:
    """Start the next page of an order's items (``activities.order_paging.OrderPaging``)."""
    raise NotImplementedError("a contract: the worker runs activities.order_paging")


@activity.defn(name="close_period")
async def close_period(period: str) -> PeriodClosed:
    """Freeze ``period`` once the projection has caught up (``activities.period_closing``)."""
    raise NotImplementedError("a contract: the worker runs activities.period_closing")


@activity.defn(name="deliver_webhook")
async def deliver_webhook(input: DeliveryInput) -> DeliveryAttempt:
    """POST the event to the subscription's URL, signed; raise on anything but 2xx so Temporal
    retries (``activities.webhooks.WebhookDelivery``)."""
    raise NotImplementedError("a contract: the worker runs activities.webhooks")


@activity.defn(name="park_webhook_delivery")
async def park_webhook_delivery(input: ParkInput) -> None:
    """Mark a delivery parked with its last error (``activities.webhooks.WebhookDelivery``)."""
    raise NotImplementedError("a contract: the worker runs activities.webhooks")


@activity.defn(name="produce_documents")
async def produce_documents(input: ProduceDocumentsInput) -> list[str]:
    """Make and store every format of the closed period's notice; one line per document
    (``activities.document_production.DocumentProduction``)."""
    raise NotImplementedError("a contract: the worker runs activities.document_production")
