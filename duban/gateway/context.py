"""The gateway's composition: one Temporal client, one engine, the keys, catalogue and rulebook.

``Gateway`` is built once per process (``open_gateway``) and shared by every request; its engine is
disposed when the process stops. ``service_requests`` keeps what an Open311 request carries beyond
the item (service code, description, address, coordinates, media, attributes), written only once the
item's workflow has started, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine
from temporalio.client import Client

from duban.config import Settings
from duban.gateway.catalogue import DEFAULT_CATALOGUE_PATH, Catalogue, load_catalogue
from duban.gateway.keys import KeyStore
from duban.observability import temporal_runtime
from events.sql import create_schema, insert_ignoring_duplicates, make_engine
from events.store import EventStore
from projections import read_models as rm
from workflows.payload_converter import DATA_CONVERTER
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, Rulebook, load_rulebook

metadata = MetaData()
service_requests = Table(
    "service_requests",
    metadata,
    Column("item_id", String(128), primary_key=True),
    Column("service_code", String(32), nullable=False),
    Column("integrator", String(32), nullable=False),
    Column("description", Text, nullable=False),
    Column("address", String(256), nullable=False),
    Column("lat", Float, nullable=True),
    Column("long", Float, nullable=True),
    Column("media_url", String(1024), nullable=False),
    Column("attributes", Text, nullable=False),  # JSON {code: [values]}
)


@dataclass
class Gateway:
    """What every request of the gateway shares."""

    settings: Settings
    client: Client
    engine: Engine
    store: EventStore
    keys: KeyStore
    catalogue: Catalogue
    rulebook: Rulebook

    def save_request(self, row: dict[str, Any]) -> None:
        """Keep an Open311 request's extras (idempotent by item id: a repeat changes nothing)."""
        row = row | {"attributes": json.dumps(row.get("attributes", {}), ensure_ascii=False)}
        with self.engine.begin() as conn:
            conn.execute(insert_ignoring_duplicates(self.engine, service_requests, ["item_id"]), [row])

    def requests_of(self, item_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The extras of ``item_ids`` that have any, by item id."""
        if not item_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(service_requests).where(service_requests.c.item_id.in_(item_ids)))
            return {r.item_id: dict(r._mapping) | {"attributes": json.loads(r.attributes)} for r in rows}


@asynccontextmanager
async def open_gateway(
    settings: Settings,
    client: Client | None = None,
    catalogue_path: Path = DEFAULT_CATALOGUE_PATH,
    rulebook_path: Path = DEFAULT_RULEBOOK_PATH,
) -> AsyncIterator[Gateway]:
    """A ``Gateway`` on ``settings`` (its database's tables are created), disposed on exit.

    Raises:
        CatalogueError, RulebookError: the catalogue or rulebook is invalid.
        RuntimeError: Temporal does not answer at ``settings.temporal_target``.
    """
    catalogue, rulebook = load_catalogue(catalogue_path), load_rulebook(rulebook_path)
    client = client or await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        runtime=temporal_runtime(),
        data_converter=DATA_CONVERTER,
    )
    engine = make_engine(settings.database)
    try:
        store = EventStore(engine)
        store.create()
        rm.create_tables(engine)
        create_schema(engine, metadata)
        yield Gateway(settings, client, engine, store, KeyStore(engine), catalogue, rulebook)
    finally:
        engine.dispose()
