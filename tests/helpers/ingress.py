"""The harness of the hypothesis ingress tests: an event loop of its own that keeps real servers,
workers and consumers alive across the (synchronous) hypothesis examples, and whole-run checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.event_recording import EventRecorder
from activities.item_lookup import ItemLookup
from duban.config import Settings
from duban.kafka import make_producer
from duban.processes.worker import workflow_runner
from projections import read_models as rm
from workflows.item_workflow import SupervisionItemWorkflow

T = TypeVar("T")


class Harness:
    """An event loop in a thread of its own, so that servers, workers and consumers live across the
    (synchronous) hypothesis examples, which run coroutines on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack = contextlib.AsyncExitStack()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 180.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        return self.run(self.stack.enter_async_context(manager))

    def background(
        self, run: Callable[[asyncio.Event], Coroutine[Any, Any, Any]]
    ) -> tuple[asyncio.Event, Any]:
        """Start ``run(stop)`` on the loop; it is stopped (``stop`` set, awaited) when the harness closes."""
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(run(stop), self.loop)

        async def halt() -> None:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.wrap_future(future), 30)

        self.stack.push_async_callback(halt)
        return stop, future

    def close(self) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@contextlib.contextmanager
def harness() -> Any:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


def topic_settings(broker: str, name: str) -> Settings:
    topic = f"{name}-{uuid.uuid4().hex[:8]}"
    return Settings(kafka_bootstrap=broker, kafka_idempotent=False, events_topic=topic,
                    dead_letter_topic=f"{topic}.dlq")  # fmt: skip


def raw_json(value: Any) -> RawValue:
    """``value`` as the JSON payload a client in any language may send (surrogates escaped, as
    JSON allows: ``"\\ud800"``), bypassing the Python client's own encoding."""
    data = json.dumps(value, ensure_ascii=True).encode()
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data))


def encodable(text: object) -> bool:
    try:
        return isinstance(text, str) and bool(text.encode())
    except UnicodeEncodeError:
        return False


@contextlib.asynccontextmanager
async def started_producer(settings_: Settings) -> AsyncIterator[Any]:
    """A started producer (made on the harness's loop, as aiokafka needs), stopped on exit."""
    producer = make_producer(settings_)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def worker(env: WorkflowEnvironment, queue: str, recorder: EventRecorder) -> Worker:
    """An item worker (made on the harness's loop, as a worker must be)."""
    lookup = ItemLookup(recorder.store)
    activities = [recorder.record_events, lookup.item_registered]
    return Worker(env.client, task_queue=queue, workflows=[SupervisionItemWorkflow], activities=activities,
                  workflow_runner=workflow_runner())  # fmt: skip


async def task_failures(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


def dead_letter_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(rm.dead_letters)).scalar_one())


async def gather(*coros: Any, limit: int = 32) -> list[Any]:
    """``asyncio.gather`` with at most ``limit`` calls in flight."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))
