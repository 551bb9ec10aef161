"""Shared fixtures: service binaries, a time-skipping Temporal environment, an event store, a worker.

The environment is session-scoped (starting the test server takes a second or two); every test that
runs workflows starts its own worker on a unique task queue inside ``async with``, so the worker has
exited before the environment shuts down (ENGINEERING.md, Temporal).
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from helpers.servers import Tansu, free_ports
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.event_recording import EventRecorder
from activities.item_lookup import ItemLookup
from activities.order_paging import OrderItems, OrderPaging
from duban.processes.worker import workflow_runner
from duban.stack.binaries import find_binary
from events.sql import make_engine
from events.store import EventStore
from workflows import search_attributes as sa
from workflows.item_workflow import SupervisionItemWorkflow
from workflows.order_workflow import SupervisionOrderWorkflow
from workflows.payload_converter import DATA_CONVERTER

hypothesis_settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
hypothesis_settings.register_profile(
    "fuzz", max_examples=5000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
"""Hypothesis runs 500 derandomized examples per test in CI (the same ones on every run);
``HYPOTHESIS_PROFILE=fuzz`` runs 5,000 new ones."""

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
        test_server_existing_path=str(temporal_test_server_path), data_converter=DATA_CONVERTER
    )
    try:
        yield env
    finally:
        await env.shutdown()
        gc.collect()  # free the bridge client while the loop lives (sdk-python#300)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env(temporal_cli_path: Path) -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (``temporal server start-dev``, in memory) with duban's search
    attributes, shared by the session: for tests that run in real time, like production.

    The time-skipping test server is no stand-in for it under load: with signals of 200 KB it once
    acknowledged twelve signals that never reached the workflow's history."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path),
        search_attributes=sa.ALL_KEYS,
        data_converter=DATA_CONVERTER,
    )
    try:
        yield env
    finally:
        await env.shutdown()
        gc.collect()


SHARED_CLOCK_LIMIT = timedelta(days=400)
"""How far one test may move the shared time-skipping clock (the longest test skips ~120 days)."""


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def shared_clock_guard(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail a test that moves the shared clock by years, which breaks the tests after it.

    ``handle.result()`` awaited with automatic time skipping on lets the server skip to any timer of
    the session, such as a workflow's ten-year run timeout; await results with
    ``env.auto_time_skipping_disabled()`` and terminate the workflows a test leaves running.
    """
    if "workflow_env" not in request.fixturenames:
        yield
        return
    env: WorkflowEnvironment = request.getfixturevalue("workflow_env")
    before = await env.get_current_time()
    yield
    moved = await env.get_current_time() - before
    assert moved < SHARED_CLOCK_LIMIT, f"the test moved the shared clock by {moved.days} days"


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
    block exits, always before the session's environment shuts down. ``client`` points it at another
    server than the session's (the dev server of ``dev_env``).
    """

    @asynccontextmanager
    async def run(
        store: EventStore | None = None, task_queue: str | None = None, client: Client | None = None
    ) -> AsyncIterator[str]:
        queue = task_queue or unique_task_queue()
        client = client or workflow_env.client
        recorder = EventRecorder(store or event_store, None, "t")
        paging = OrderPaging(client, OrderItems((store or event_store).engine), queue)
        async with Worker(
            client,
            task_queue=queue,
            workflows=[SupervisionItemWorkflow, SupervisionOrderWorkflow],
            activities=[
                recorder.record_events,
                ItemLookup(store or event_store).item_registered,
                paging.start_order_page,
            ],
            workflow_runner=workflow_runner(),
            graceful_shutdown_timeout=timedelta(seconds=5),
        ):
            yield queue

    return run


PG_ADMIN_URL = os.environ.get("DUBAN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""PostgreSQL database the tests create their throwaway databases from (trust auth on this machine)."""


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for the session, dropped at the end."""
    name = f"duban_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker (memory storage) on a free port for the test session; stopped at the end."""
    tansu = Tansu(free_ports(1)[0], tmp_path_factory.mktemp("tansu") / "tansu.log")
    tansu.start()
    try:
        yield tansu.address
    finally:
        tansu.stop()
