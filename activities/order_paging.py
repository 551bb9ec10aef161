"""Orders' item lists in SQL, and the activity that starts an order's items one page at a time.

An order's items are stored before the order workflow starts (``OrderItems.add``): one row per item,
numbered by ``position``, with the registration as JSON. ``start_order_page`` starts the item
workflows after a cursor; starting is idempotent (an item already running is kept, not restarted),
so a retried page starts nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, func, select
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.converter import AdvancedJSONEncoder, value_to_type

from events.errors import ValidationError
from events.sql import create_schema
from workflows.item_client import start_item
from workflows.item_model import Registration
from workflows.item_workflow import ItemWorkflowInput
from workflows.order_model import OrderPage, OrderPageInput

metadata = MetaData()

START_CONCURRENCY = 32
"""Item workflows one page activity starts at a time (each start is one server round trip)."""

order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("item_id", String(128), nullable=False),
    Column("registration", Text, nullable=False),
)


class OrderItems:
    """The item lists of supervision orders on an engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(engine, metadata)

    def add(self, order_id: str, registrations: Sequence[Registration]) -> int:
        """Append ``registrations`` to the order's list (each gets ``order_id``); return how many.

        Raises:
            ValidationError: ``order_id`` empty, or an item already on the order (nothing is stored).
        """
        if not order_id.strip():
            raise ValidationError("order_id", "must not be empty")
        with self.engine.begin() as conn:
            rows = conn.execute(select(order_items.c.item_id).where(order_items.c.order_id == order_id))
            known = {r.item_id for r in rows}
            last = conn.execute(
                select(func.max(order_items.c.position)).where(order_items.c.order_id == order_id)
            ).scalar()
            position = -1 if last is None else last
            batch = []
            for reg in registrations:
                if reg.item_id in known:
                    raise ValidationError("item_id", f"{reg.item_id!r} is already on order {order_id!r}")
                known.add(reg.item_id)
                position += 1
                data = json.dumps(dataclasses.replace(reg, order_id=order_id), cls=AdvancedJSONEncoder)
                batch.append(
                    {"order_id": order_id, "position": position, "item_id": reg.item_id, "registration": data}
                )
            if batch:
                conn.execute(order_items.insert(), batch)
        return len(batch)

    def page(self, order_id: str, cursor: int, limit: int) -> list[tuple[int, Registration]]:
        """Up to ``limit`` ``(position, registration)`` after position ``cursor``, in order."""
        query = (
            select(order_items.c.position, order_items.c.registration)
            .where(order_items.c.order_id == order_id, order_items.c.position > cursor)
            .order_by(order_items.c.position)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                (r.position, value_to_type(Registration, json.loads(r.registration)))
                for r in conn.execute(query)
            ]


class OrderPaging:
    """Holds the client, the order lists and the items' task queue; ``start_order_page`` is the activity."""

    def __init__(self, client: Client, items: OrderItems, task_queue: str) -> None:
        self.client, self.items, self.task_queue = client, items, task_queue

    @activity.defn(name="start_order_page")
    async def start_order_page(self, page: OrderPageInput) -> OrderPage:
        """Start the next page of an order's items; ``last`` is true when none remain after it."""
        rows = self.items.page(page.order_id, page.cursor, page.limit + 1)
        todo, last = rows[: page.limit], len(rows) <= page.limit
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def start(reg: Registration) -> None:
            async with gate:
                await start_item(
                    self.client,
                    ItemWorkflowInput(
                        registration=reg,
                        search_attributes=page.search_attributes,
                        clock_offset_s=page.clock_offset_s,
                    ),
                    self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
                activity.heartbeat(reg.item_id)

        await asyncio.gather(*(start(reg) for _, reg in todo))
        cursor = todo[-1][0] if todo else page.cursor
        return OrderPage([reg.item_id for _, reg in todo], cursor, last)
