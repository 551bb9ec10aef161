"""The composition root: engines, the event store, the producer and the recorder, built from
``Settings`` in one place for every entry point (the worker, the main job, the demo, ``adjust``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from activities.event_recording import EventRecorder
from duban.config import Settings, check_database_url
from duban.errors import ConfigurationError
from duban.kafka import make_producer, start_producer
from duban.logs import quiet_logger
from duban.stack.probes import ensure_topics
from events.sql import make_engine

__all__ = ["Recording", "existing_database", "make_engine", "publish_once", "read_models", "recording"]
from events.store import EventStore
from projections import read_models as rm


@dataclass
class Recording:
    """What records events: the store on ``engine``, a started producer, the recorder on both."""

    engine: Engine
    store: EventStore
    producer: AIOKafkaProducer
    recorder: EventRecorder


@asynccontextmanager
async def recording(
    settings: Settings, engine: Engine | None = None, topic: str | None = None, recreate_topics: bool = True
) -> AsyncIterator[Recording]:
    """A ``Recording`` on ``engine`` (default: the configured database; the store's tables are created)
    publishing to ``topic`` (default: the events topic); the producer is stopped on exit. With
    ``recreate_topics`` the recorder recreates the topics after a failed publish (a broker restarted
    empty) before its activity is retried.

    Raises:
        aiokafka.errors.KafkaError: the producer cannot start (no broker answers).
        ConfigurationError: the broker refused an idempotent producer (``kafka.start_producer``).
    """
    engine = engine or make_engine(settings.database)
    store = EventStore(engine)
    store.create()
    producer = make_producer(settings)
    again = (lambda: ensure_topics(settings)) if recreate_topics else None
    try:
        await start_producer(producer, settings)
        yield Recording(
            engine, store, producer, EventRecorder(store, producer, topic or settings.events_topic, again)
        )
    finally:
        await producer.stop()


async def publish_once(settings: Settings, key: str, raw: bytes, timeout_s: float = 30.0) -> bool:
    """Publish one encoded event to the events topic; False if the broker did not take it within
    ``timeout_s`` seconds per step (the caller has stored it: the projection's catch-up delivers it)."""
    producer = make_producer(settings)
    with quiet_logger("aiokafka"):  # a broker that does not answer is reported by the caller
        try:
            await asyncio.wait_for(producer.start(), timeout_s)
            await asyncio.wait_for(
                producer.send_and_wait(settings.events_topic, raw, key=key.encode()), timeout_s
            )
            return True
        except Exception:  # the event is stored: delivery is the projection's catch-up's job now
            return False
        finally:
            await producer.stop()


def existing_database(url: str) -> Engine:
    """An engine on ``url``, a PostgreSQL URL or an existing SQLite file.

    Raises:
        ConfigurationError: not a SQLite or PostgreSQL URL, an in-memory SQLite, no such file, or a
            database that cannot be read (not a database, a server that does not answer).
    """
    check_database_url(url, "database_url")
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite") and (not url.startswith("sqlite:///") or path in ("", ":memory:")):
        raise ConfigurationError(f"database_url: {url} is not a SQLite file (use sqlite:///path/to/file.db)")
    if url.startswith("sqlite:///") and not Path(path).is_file():
        raise ConfigurationError(f"database_url: no such SQLite file: {path}")
    engine = make_engine(url)
    try:
        inspect(engine).get_table_names()
    except SQLAlchemyError as exc:  # not a database, a server that does not answer, no such database
        engine.dispose()
        raise ConfigurationError(f"database_url: {url}: {str(exc).splitlines()[0]}") from None
    return engine


def read_models(url: str | Engine) -> Engine:
    """An engine on a database that holds this duban's read models (every column of ``item_view``,
    ``unit_day_counters`` and ``score_adjustments``): a new one on ``url``, or ``url`` itself when it
    is an engine already (a process that holds one, like the gateway, checks it and keeps it).

    Raises:
        ConfigurationError: as ``existing_database``; no read models; read models of an older duban
            (the columns they lack are named, and the way to rebuild them).
    """
    engine = url if isinstance(url, Engine) else existing_database(url)
    url = engine.url.render_as_string(hide_password=True)
    found = inspect(engine)
    if not found.has_table("unit_day_counters"):
        hint = (
            "run duban project, or duban rebuild-read-models from its event store"
            if found.has_table("event_store")
            else "run duban simulate or duban project"
        )
        raise ConfigurationError(f"database_url: {url} holds no read models ({hint})")
    for table in (rm.item_view, rm.unit_day_counters, rm.score_adjustments):
        present = {c["name"] for c in found.get_columns(table.name)} if found.has_table(table.name) else set()
        missing = [c.name for c in table.columns if c.name not in present]
        if missing:
            raise ConfigurationError(
                f"database_url: the read models in {url} predate this duban ({table.name} lacks "
                f"{', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}); rebuild them from the "
                "event store: duban rebuild-read-models"
            )
    return engine
