"""Fixtures of the gateway tests: a running gateway on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from helpers.gateway import RunningGateway, running_gateway
from helpers.projections import fresh
from temporalio.testing import WorkflowEnvironment

from events.sql import make_engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh database for a module's gateway: a SQLite file, or the session's PostgreSQL one
    emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('gateway') / 'gateway.db'}"
    url: str = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    fresh(engine)
    engine.dispose()
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(
    dev_env: WorkflowEnvironment, broker: str, database_url: str
) -> AsyncIterator[RunningGateway]:
    """A gateway shared by a module's tests (each uses its own item ids and keys)."""
    async with running_gateway(dev_env, broker, database_url) as gw:
        yield gw
