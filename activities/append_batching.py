"""Group commit for the event store: concurrent ``record_events`` activities share transactions.

Each workflow step records its events in an activity of its own; on a busy worker dozens run at once
and each would pay a transaction (and on SQLite wait for the single writer). ``AppendBatcher`` queues
the steps that arrive while a transaction is running and writes them together in the next one
(``EventStore.record_many``), at most ``max_events`` events per transaction. A step that shares an
event id with one already taken (an activity retried while its first attempt still waits) waits for
the next transaction, where it finds its events stored. If a transaction fails, each step of it is
recorded alone, so a step's own error (an event conflict, a value the database refuses) reaches only
that step's activity, and the others are stored as if alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from events.envelope import EventEnvelope
from events.store import EventStore

MAX_EVENTS_PER_TRANSACTION = 2000
"""Most events written in one group commit (a few hundred steps; keeps each statement's parameter
count well inside SQLite's and PostgreSQL's limits)."""


@dataclass
class _Step:
    events: Sequence[EventEnvelope]
    encoded: Sequence[bytes]
    done: asyncio.Future[tuple[int, list[bytes]]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class AppendBatcher:
    """Records steps of events in the store, several concurrent steps per transaction.

    Args:
        store: the event store.
        max_events: the most events in one transaction (a larger single step goes alone).
    """

    def __init__(self, store: EventStore, max_events: int = MAX_EVENTS_PER_TRANSACTION) -> None:
        self.store = store
        self.max_events = max_events
        self.transactions = 0
        self._queue: list[_Step] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(
        self, events: Sequence[EventEnvelope], encoded: Sequence[bytes]
    ) -> tuple[int, list[bytes]]:
        """``EventStore.record`` of one step, in a transaction shared with the steps queued with it.

        Raises:
            whatever ``EventStore.record`` raises for this step alone.
        """
        step = _Step(events, encoded)
        self._queue.append(step)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await asyncio.shield(step.done)

    async def _write_all(self) -> None:
        while self._queue:
            taken: list[_Step] = []
            ids: set[str] = set()
            waiting: list[_Step] = []
            size = 0
            while self._queue:
                step = self._queue.pop(0)
                step_ids = {e.event_id for e in step.events}
                full = taken and size + len(step.events) > self.max_events
                if full or not ids.isdisjoint(step_ids):  # a retry of a queued step: the next one
                    waiting.append(step)
                    continue
                taken.append(step)
                ids |= step_ids
                size += len(step.events)
            self._queue[:0] = waiting
            try:
                await self._write(taken)
            finally:  # cancelled or failed unexpectedly: no caller waits for ever
                for step in taken:
                    if not step.done.done():
                        step.done.set_exception(RuntimeError("the group commit was interrupted"))

    async def _write(self, steps: list[_Step]) -> None:
        self.transactions += 1
        if len(steps) > 1:
            try:
                results = await asyncio.to_thread(
                    self.store.record_many, [(s.events, s.encoded) for s in steps]
                )
            except Exception:  # someone's step failed the transaction: each step alone
                pass
            else:
                for step, result in zip(steps, results, strict=True):
                    if not step.done.done():
                        step.done.set_result(result)
                return
        for step in steps:
            try:
                result = await asyncio.to_thread(self.store.record, step.events, step.encoded)
            except Exception as exc:
                if not step.done.done():
                    step.done.set_exception(exc)
            else:
                if not step.done.done():
                    step.done.set_result(result)
