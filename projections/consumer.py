"""Kafka consumer that feeds the item projection (aiokafka, manual positions in SQL).

Offsets are never committed to Kafka: the projector stores the next offset of each partition in
``projection_positions`` in the same transaction as the rows it wrote, and on every assignment the
consumer seeks each partition there (to the beginning when nothing is stored). Together with the
idempotent projector this gives effectively-once read models on at-least-once delivery
(ENGINEERING.md "Kafka").

The topic is only the fast path; the event store is the truth. The consumer (re)creates its topics
when they are missing, notices a stored position beyond a partition's end (the topic was recreated,
e.g. by a broker that restarted empty) and starts that partition again from its beginning, and every
``sweep_interval_s`` catches up from the store the stored events the topic never delivered
(``ItemProjector.catch_up``). A database or broker error never ends ``run``: the batch is retried
and the broker reconnected, with backoff. ``lag()`` is the true backlog (stored events not yet
applied), ``kafka_lag()`` the records not yet read; ``last_poll_at`` tells a stalled consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from events.errors import TopicsUnavailable
from events.topics import TopicSettings, ensure_topics
from projections import read_models as rm
from projections import store_sync
from projections.projector import BatchResult, ItemProjector, RawMessage

log = structlog.get_logger(__name__)

POLL_TIMEOUT_MS = 500
MAX_RECORDS = 2000
SWEEP_INTERVAL_S = 5.0
"""How often the store is swept for events the topic has not delivered, in seconds."""
GRACE_S = 5.0
"""A stored event younger than this (seconds) is left to the topic by the sweep."""
RETRY_MAX_S = 30.0
"""Longest wait between two attempts after a database or broker error, in seconds."""
BEYOND_END_CONFIRMATIONS = 3
"""Looks, a second apart, at a partition's end before its topic counts as recreated."""


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, owner: ProjectionConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Nothing to save: positions are written with every batch."""

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self.owner._seek_to_stored(assigned)


class ProjectionConsumer:
    """Consumes ``settings.events_topic`` into an ``ItemProjector`` on ``engine``.

    Args:
        settings: bootstrap servers (``kafka_target``), topics and their partition count.
        engine: database of the event store and the read models (tables created if missing).
        group_id: Kafka consumer group; partitions are shared among its members.
        sweep_interval_s: how often to catch up from the store (seconds).

    Attributes:
        last_poll_at: aware UTC time of the last completed poll, ``None`` before the first.
        totals: sum of the ``BatchResult`` of every batch and sweep applied by this consumer.
        restarts: how many times the Kafka consumer was recreated after an error.
    """

    def __init__(
        self,
        settings: TopicSettings,
        engine: Engine,
        group_id: str = "duban-projector",
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.group_id = group_id
        self.topic = settings.events_topic
        self.sweep_interval_s = sweep_interval_s
        self.projector = ItemProjector(engine)
        self.last_poll_at: datetime | None = None
        self.totals = BatchResult()
        self.restarts = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._started = asyncio.Event()

    def stored_positions(self) -> dict[int, int]:
        """Next offset to read per partition of the topic, as stored in ``projection_positions``."""
        pp = rm.projection_positions.c
        query = select(pp.partition, pp.next_offset).where(
            pp.projection == self.projector.projection, pp.topic == self.topic
        )
        with self.engine.connect() as conn:
            return {int(part): int(nxt) for part, nxt in conn.execute(query)}

    def _restart_partition(self, partition: int) -> None:
        """Store position 0 for ``partition`` (its topic was recreated: old offsets mean nothing)."""
        pp = rm.projection_positions.c
        stmt = (
            update(rm.projection_positions)
            .where(
                pp.projection == self.projector.projection, pp.topic == self.topic, pp.partition == partition
            )
            .values(next_offset=0)
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    async def _beyond_end(self, assigned: Collection[TopicPartition], stored: dict[int, int]) -> set[int]:
        """Partitions whose stored position still lies beyond the topic's end after
        ``BEYOND_END_CONFIRMATIONS`` checks a second apart: their topic was recreated.

        A single look is not enough: while producers write, a broker may report an end (its high
        watermark) a few records behind what a fetch has already returned (seen on Tansu).
        """
        consumer = self._consumer
        suspects = set(stored)
        for attempt in range(BEYOND_END_CONFIRMATIONS):
            if consumer is None or not suspects:
                return set()
            if attempt:
                await asyncio.sleep(1.0)
            ends = await consumer.end_offsets([tp for tp in assigned if tp.partition in suspects])
            suspects = {tp.partition for tp, end in ends.items() if stored[tp.partition] > end}
        return suspects

    async def _seek_to_stored(
        self, assigned: Collection[TopicPartition], recreated: set[int] | None = None
    ) -> None:
        """Seek each assigned partition to its stored position; a partition in ``recreated`` (found by
        ``_beyond_end``; looked for here when ``None``) starts again from the beginning."""
        consumer = self._consumer
        if consumer is None or not assigned:
            return
        stored = await asyncio.to_thread(self.stored_positions)
        mine = {tp.partition: stored[tp.partition] for tp in assigned if tp.partition in stored}
        if recreated is None:
            recreated = await self._beyond_end(assigned, mine)
        fresh = []
        for tp in assigned:
            if tp.partition in recreated:
                log.warning("projection.topic_recreated", partition=tp.partition, stored=mine[tp.partition])
                await asyncio.to_thread(self._restart_partition, tp.partition)
            if tp.partition in recreated or tp.partition not in mine:
                fresh.append(tp)
            else:
                consumer.seek(tp, mine[tp.partition])
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        log.info("projection.assigned", partitions=sorted(tp.partition for tp in assigned), positions=stored)

    async def _sweep(self) -> None:
        """Catch up from the event store (events the topic has not delivered); a database error is
        logged, and the next sweep tries again."""
        try:
            result = await asyncio.to_thread(self.projector.catch_up, grace_s=GRACE_S)
        except SQLAlchemyError as exc:
            log.warning("projection.sweep_failed", error=repr(exc)[:500])
            return
        self.totals += result
        if result.applied or result.dead_lettered:
            log.info("projection.caught_up_from_store", applied=result.applied, dead=result.dead_lettered)

    async def _apply(self, messages: list[RawMessage], stop: asyncio.Event) -> None:
        """Apply one poll's records, retrying (with backoff) while the database fails."""
        wait = 0.25
        while True:
            try:
                result = await asyncio.to_thread(self.projector.apply_batch, messages)
            except SQLAlchemyError as exc:  # unreachable, locked, a concurrent projector: retry
                log.warning("projection.batch_failed", error=repr(exc)[:500], retry_in_s=wait)
                if stop.is_set():
                    raise
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX_S)
                continue
            self.totals += result
            if result.dead_lettered:
                log.warning("projection.dead_letters", count=result.dead_lettered)
            return

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set: poll up to 2,000 records every ≤ 500 ms, apply each poll
        as one batch in a worker thread, sweep the store every ``sweep_interval_s``. Database and
        broker errors are retried with backoff (the Kafka consumer is recreated); the consumer leaves
        the group when this returns.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: only if a batch still fails when ``stop`` is set.
        """
        wait = 0.5
        while not stop.is_set():
            try:
                await self._consume(stop)
                wait = 0.5
            except (SQLAlchemyError, asyncio.CancelledError):
                raise
            except Exception as exc:  # the broker went away, a topic vanished: reconnect
                self.restarts += 1
                log.warning("projection.consumer_restart", error=repr(exc)[:500], retry_in_s=wait)
                await self._sweep()  # the store still answers while the broker does not
                await _sleep_unless(stop, wait)
                wait = min(wait * 2, RETRY_MAX_S)

    async def _consume(self, stop: asyncio.Event) -> None:
        try:
            await ensure_topics(self.settings)  # a broker that restarted empty lost them
        except TopicsUnavailable as exc:  # e.g. not allowed to create topics: consume what exists
            log.warning("projection.ensure_topics_failed", error=str(exc)[:500])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_target,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,  # notice a recreated topic within seconds, not minutes
        )
        consumer.subscribe([self.topic], listener=_SeekToStored(self))
        self._consumer = consumer
        loop = asyncio.get_running_loop()
        try:
            await consumer.start()
            self._started.set()
            await self._sweep()
            next_sweep = loop.time() + self.sweep_interval_s
            while not stop.is_set():
                polled = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS)
                self.last_poll_at = datetime.now(UTC)
                messages = [
                    RawMessage(r.topic, r.partition, r.offset, r.key, r.value or b"")
                    for tp in sorted(polled, key=lambda tp: tp.partition)
                    for r in polled[tp]
                ]
                if messages:
                    await self._apply(messages, stop)
                if loop.time() >= next_sweep:
                    await self._check_recreated()
                    await self._sweep()
                    next_sweep = loop.time() + self.sweep_interval_s
        finally:
            self._started.clear()
            self._consumer = None
            await consumer.stop()

    async def _check_recreated(self) -> None:
        """Start again from the beginning a partition whose stored position lies beyond its end."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        if assigned:
            stored = await asyncio.to_thread(self.stored_positions)
            mine = {tp.partition: stored[tp.partition] for tp in assigned if tp.partition in stored}
            recreated = await self._beyond_end(assigned, mine)
            if recreated:  # already confirmed: no second round of looks
                await self._seek_to_stored(assigned, recreated)

    async def _end_offsets(self) -> dict[int, int]:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("the consumer is not running; start run() first")
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            await consumer.topics()  # refresh metadata
            partitions = consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(ends[tp]) for tp in tps}

    async def lag(self) -> int:
        """The true backlog: stored events the projection has not handled yet (0 when the read
        models reflect the whole store), whatever the topic holds."""
        return await asyncio.to_thread(store_sync.backlog, self.engine, None, self.projector.projection)

    async def kafka_lag(self) -> dict[int, int]:
        """Per partition: end offset minus stored position (records not yet read from the topic).

        Raises:
            RuntimeError: ``run()`` is not running.
        """
        ends = await self._end_offsets()
        stored = await asyncio.to_thread(self.stored_positions)
        return {p: max(0, end - stored.get(p, 0)) for p, end in ends.items()}

    async def wait_caught_up(self, timeout_s: float = 30.0) -> None:
        """Return once every event stored before the call is handled and the stored positions reach
        the end offsets as they are at the time of the call. Waits for ``run()`` (in another task)
        to start first.

        Raises:
            TimeoutError: not caught up within ``timeout_s`` seconds (the message gives the lag).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        called = datetime.now(UTC)
        await asyncio.wait_for(self._started.wait(), timeout_s)
        targets = await self._end_offsets()
        while True:
            backlog = await asyncio.to_thread(
                store_sync.backlog, self.engine, called, self.projector.projection
            )
            stored = await asyncio.to_thread(self.stored_positions)
            behind = {p: end - stored.get(p, 0) for p, end in targets.items() if stored.get(p, 0) < end}
            if not behind and not backlog:
                return
            if backlog and loop.time() >= deadline - timeout_s / 2:
                await self._sweep()  # past half the time, take what the topic is slow to bring
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"projection not caught up after {timeout_s} s; stored events not applied: {backlog}, "
                    f"records behind: {behind}"
                )
            await asyncio.sleep(0.1)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_until_caught_up(
    settings: TopicSettings, engine: Engine, timeout_s: float = 30.0, group_id: str = "duban-projector"
) -> BatchResult:
    """Run a ``ProjectionConsumer`` until it has applied everything in the store and the topic now,
    then stop it.

    Returns:
        the totals of the batches applied.

    Raises:
        TimeoutError: not caught up within ``timeout_s`` seconds.
        whatever ``ProjectionConsumer.run`` raises.
    """
    consumer = ProjectionConsumer(settings, engine, group_id)
    stop = asyncio.Event()
    runner = asyncio.create_task(consumer.run(stop))
    waiter = asyncio.create_task(consumer.wait_caught_up(timeout_s))
    try:
        await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()  # raises the consumer's error
            raise RuntimeError("the projection consumer stopped before catching up")
        await waiter
    finally:
        waiter.cancel()
        stop.set()
        await asyncio.gather(runner, return_exceptions=True)
    return consumer.totals
