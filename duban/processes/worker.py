"""The production worker: the item, order, period-close and webhook-delivery workflows and their
activities (``record_events``, ``item_registered``, ``start_order_page``, ``close_period``,
``deliver_webhook``, ``park_webhook_delivery``) on one task queue."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.document_production import DocumentProduction
from activities.event_recording import EventRecorder
from activities.item_lookup import ItemLookup
from activities.order_paging import OrderItems, OrderPaging
from activities.period_closing import PeriodClosing
from activities.webhooks import WebhookDelivery, WebhookStore
from duban import observability as obs
from duban import wiring
from duban.config import Settings
from duban.errors import StackError
from duban.stack.probes import ensure_topics
from events.sql import make_engine
from events.working_calendar import CALENDARS, calendar_for, calendar_versions
from projections.scoring import load_scorebook
from workflows.item_workflow import SupervisionItemWorkflow
from workflows.order_workflow import SupervisionOrderWorkflow
from workflows.payload_converter import DATA_CONVERTER
from workflows.period_close import PeriodCloseWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

log = structlog.get_logger(__name__)

PASSTHROUGH_MODULES: Sequence[str] = ("workflows", "events", "pydantic", "pydantic_core", "yaml")
"""Modules the workflow sandbox imports once and shares instead of re-importing per workflow run.

The workflows import only the pure core (``workflows``, ``events``) and activity contracts, never SQL,
Kafka or ``holidays`` (calendars are data: ``events.working_calendar``); these modules are
deterministic (no I/O at import beyond reading the calendar files, no global state the workflows
change), and the sandbox still guards the workflow code's calls. Measured on the Boston sample: about
2× the item throughput of the default sandbox, which re-imports them for every run. ``pydantic``
decodes the workflow's payloads strictly (``workflows.item_payloads``); ``yaml`` reads the calendars.
A plain ``Replayer`` with the default sandbox replays the same histories (``tests``)."""


def warm_calendars() -> None:
    """Read every version of every working calendar and build its per-year tables now, outside any
    workflow (``events.working_calendar`` caches them per process), so no workflow task pays for it."""
    for name in CALENDARS:
        for version in calendar_versions(name):
            first, last = version.years
            span = (datetime(first, 1, 1, tzinfo=UTC), datetime(last + 1, 1, 1, tzinfo=UTC))
            calendar_for(f"{name}@{version.version}").working_seconds_between(*span)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandboxed runner with duban's modules passed through (see ``PASSTHROUGH_MODULES``)."""
    warm_calendars()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def webhook_activities(webhooks: WebhookDelivery) -> list[Callable[..., Any]]:
    """The delivery activities of ``webhooks`` (bound methods)."""
    return [webhooks.deliver_webhook, webhooks.park_webhook_delivery]


def build_worker(
    client: Client,
    task_queue: str,
    recorder: EventRecorder,
    max_cached: int = 10000,
    paging: OrderPaging | None = None,
    closing: PeriodClosing | None = None,
    webhooks: WebhookDelivery | None = None,
    documents: DocumentProduction | None = None,
) -> Worker:
    """A worker for ``SupervisionItemWorkflow``, ``record_events`` and ``item_registered`` (both on the
    recorder's store) on ``task_queue``, plus
    ``SupervisionOrderWorkflow`` and ``start_order_page`` when ``paging`` is given, and
    ``PeriodCloseWorkflow``'s ``close_period`` when ``closing`` is given, and the webhook
    deliveries (``WebhookDeliveryWorkflow``, ``deliver_webhook``, ``park_webhook_delivery``) when
    ``webhooks`` is given, and ``produce_documents`` (after a period close) when ``documents`` is.

    ``max_cached`` bounds the sticky workflow cache (items kept in memory between tasks); keep it
    above the number of concurrently active items, or evicted items are replayed from history.
    """
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            SupervisionItemWorkflow,
            SupervisionOrderWorkflow,
            PeriodCloseWorkflow,
            *([WebhookDeliveryWorkflow] if webhooks else []),
        ],
        activities=[
            recorder.record_events,
            ItemLookup(recorder.store).item_registered,
            *([paging.start_order_page] if paging else []),
            *([closing.close_period] if closing else []),
            *(webhook_activities(webhooks) if webhooks else []),
            *([documents.produce_documents] if documents else []),
        ],
        workflow_runner=workflow_runner(),
        max_cached_workflows=max_cached,
        max_concurrent_activities=64,
    )


def producer(settings: Settings, engine: Engine) -> Callable[[str, str], list[Any]]:
    """What ``produce_documents`` runs: the period's notice in every format, in the configured
    language and template, stored in the database."""
    from duban.documents.service import produce_period_documents

    template = Path(settings.documents_template) if settings.documents_template else None

    def produce(cadence: str, period: str) -> list[Any]:
        return list(produce_period_documents(engine, cadence, period, settings.documents_lang, template))

    return produce


async def run_worker(settings: Settings, status_port: int = 0, status_host: str = "127.0.0.1") -> None:
    """Run the production worker until SIGINT/SIGTERM: connect, record to the store and Kafka.

    With ``status_port`` (not 0), ``/metrics`` (duban's and the Temporal SDK's), ``/healthz`` and
    ``/readyz`` (Temporal and the database answer, the worker runs) are served on it
    (``duban.observability``).
    """
    runtime = obs.temporal_runtime() if status_port else None
    client = await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        runtime=runtime,
        data_converter=DATA_CONVERTER,
    )
    engine = make_engine(settings.database)
    paging = OrderPaging(client, OrderItems(engine), settings.task_queue)
    closing = PeriodClosing(engine, load_scorebook())
    webhook_store = WebhookStore(engine)
    webhook_store.create()
    try:
        await ensure_topics(settings)  # a broker that restarted empty has lost them
    except StackError as exc:  # e.g. not allowed to create topics: publish to what exists
        log.warning("worker.ensure_topics_failed", error=str(exc))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.Event()

    async def checks() -> dict[str, str]:
        try:
            await asyncio.wait_for(client.service_client.check_health(), 3)
            temporal = "ok"
        except Exception as exc:  # not ready; the reason is reported
            temporal = f"does not answer: {type(exc).__name__}"
        worker_state = "ok" if running.is_set() else "not polling yet"
        return {"temporal": temporal, "database": await obs.database_answers(engine), "worker": worker_state}

    serving = None
    if status_port:
        app = obs.status_app(checks, sdk_address=obs.sdk_metrics_address(runtime))
        serving = asyncio.create_task(obs.serve_status(app, status_host, status_port, stop))
    try:
        async with (
            wiring.recording(settings, engine) as rec,
            build_worker(
                client,
                settings.task_queue,
                rec.recorder,
                paging=paging,
                closing=closing,
                webhooks=WebhookDelivery(webhook_store, rec.store),
                documents=DocumentProduction(producer(settings, engine)),
            ),
        ):
            running.set()
            log.info("worker.started", task_queue=settings.task_queue, temporal=settings.temporal_target)
            await stop.wait()
    finally:
        running.clear()
        stop.set()
        if serving is not None:
            await serving
        log.info("worker.stopped")
