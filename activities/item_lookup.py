"""The ``item_registered`` activity: whether the event store holds an item's registration.

A merge names the item that survives; under rules revision 2 the item workflow asks this activity
whether that item exists before it applies the merge (``workflows.item_workflow``).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from temporalio import activity

from events import types as t
from events.bounds import IDENTIFIER, text_problem
from events.store import EventStore, stored_events


class ItemLookup:
    """Reads the event store; ``item_registered`` is the activity (register the bound method)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def registered(self, item_id: str) -> bool:
        """Whether an ``ItemRegistered`` event of ``item_id`` is stored (False for an id that is not
        a valid item id at all)."""
        if text_problem(item_id, IDENTIFIER) is not None or not item_id:
            return False
        c = stored_events.c
        query = select(c.position).where(c.item_id == item_id, c.event_type == t.ITEM_REGISTERED).limit(1)
        with self.store.engine.connect() as conn:
            return conn.execute(query).first() is not None

    @activity.defn(name="item_registered")
    async def item_registered(self, item_id: str) -> bool:
        """Activity: ``registered(item_id)`` in a worker thread."""
        return await asyncio.to_thread(self.registered, item_id)
