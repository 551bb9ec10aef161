"""Shared fixtures: service binaries, a time-skipping Temporal environment, an event store, a worker.

The environment is session-scoped (starting the test server takes a second or two); every test that
runs workflows starts its own worker on a unique task queue inside ``async with``, so the worker has
exited before the environment shuts down (ENGINEERING.md, Temporal).
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.event_recording import EventRecorder
from duban.binaries import find_binary
from duban.db import make_engine
from events.store import EventStore
from workflows.item_workflow import SupervisionItemWorkflow

ItemWorkerFactory = Callable[..., AbstractAsyncContextManager[str]]
"""``item_worker(store=None, task_queue=None)``: ``async with`` it to run a worker; yields its queue."""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Drop temporalio clients before interpreter teardown, or the process can crash at exit
    # (sdk-python#300).
    gc.collect()


@pytest.fixture(scope="session")
def temporal_test_server_path() -> Path:
    """The ``temporal-test-server`` binary (time-skipping test server)."""
    return find_binary("temporal-test-server")


@pytest.fixture(scope="session")
def temporal_cli_path() -> Path:
    """The ``temporal`` CLI binary (dev server)."""
    return find_binary("temporal")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def workflow_env(temporal_test_server_path: Path) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping Temporal test server shared by the session (its clock is shared too)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server_path)
    )
    try:
        yield env
    finally:
        await env.shutdown()
        gc.collect()  # free the bridge client while the loop lives (sdk-python#300)


@pytest.fixture
def event_store(tmp_path: Path) -> Iterator[EventStore]:
    """An empty SQLite event store in the test's temporary folder."""
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    store = EventStore(engine)
    store.create()
    try:
        yield store
    finally:
        engine.dispose()


def unique_task_queue(prefix: str = "duban-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def item_worker(workflow_env: WorkflowEnvironment, event_store: EventStore) -> ItemWorkerFactory:
    """Factory of workers running ``SupervisionItemWorkflow`` and ``record_events`` into a store.

    Use inside the test: ``async with item_worker() as task_queue: ...``. The worker stops when the
    block exits, always before the session's environment shuts down.
    """

    @asynccontextmanager
    async def run(store: EventStore | None = None, task_queue: str | None = None) -> AsyncIterator[str]:
        queue = task_queue or unique_task_queue()
        recorder = EventRecorder(store or event_store, None, "t")
        async with Worker(
            workflow_env.client,
            task_queue=queue,
            workflows=[SupervisionItemWorkflow],
            activities=[recorder.record_events],
            graceful_shutdown_timeout=timedelta(seconds=5),
        ):
            yield queue

    return run
