"""Kafka consumer that feeds the item projection (aiokafka, manual positions in SQL).

Offsets are never committed to Kafka: the projector stores the next offset of each partition in
``projection_positions`` in the same transaction as the rows it wrote, and on every assignment the
consumer seeks each partition there (to the beginning when nothing is stored). Together with the
idempotent projector this gives effectively-once read models on at-least-once delivery
(ENGINEERING.md "Kafka"). ``last_poll_at`` and ``lag()`` let a supervisor notice a stalled consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from sqlalchemy import Engine, select

from duban.config import Settings
from projections import read_models as rm
from projections.projector import BatchResult, ItemProjector, RawMessage

log = structlog.get_logger(__name__)

POLL_TIMEOUT_MS = 500
MAX_RECORDS = 2000


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
        settings: bootstrap servers (``kafka_target``) and topic (``events_topic``).
        engine: database of the read models (tables created if missing).
        group_id: Kafka consumer group; partitions are shared among its members.

    Attributes:
        last_poll_at: aware UTC time of the last completed poll, ``None`` before the first.
        totals: sum of the ``BatchResult`` of every batch applied by this consumer.
    """

    def __init__(self, settings: Settings, engine: Engine, group_id: str = "duban-projector") -> None:
        self.settings = settings
        self.engine = engine
        self.group_id = group_id
        self.topic = settings.events_topic
        self.projector = ItemProjector(engine)
        self.last_poll_at: datetime | None = None
        self.totals = BatchResult()
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

    async def _seek_to_stored(self, assigned: Collection[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        stored = await asyncio.to_thread(self.stored_positions)
        fresh = []
        for tp in assigned:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                fresh.append(tp)
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        log.info("projection.assigned", partitions=sorted(tp.partition for tp in assigned), positions=stored)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set: poll up to 2,000 records every ≤ 500 ms, apply each poll.

        Each poll's records are applied as one batch in a worker thread. The consumer leaves the
        group when this returns.

        Raises:
            aiokafka.errors.KafkaError: the broker cannot be reached at start.
            sqlalchemy.exc.SQLAlchemyError: a batch could not be stored. Nothing of it was applied;
                a new consumer resumes from the stored positions.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_target,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        consumer.subscribe([self.topic], listener=_SeekToStored(self))
        self._consumer = consumer
        try:
            await consumer.start()
            self._started.set()
            while not stop.is_set():
                polled = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS)
                self.last_poll_at = datetime.now(UTC)
                messages = [
                    RawMessage(r.topic, r.partition, r.offset, r.key, r.value or b"")
                    for tp in sorted(polled, key=lambda tp: tp.partition)
                    for r in polled[tp]
                ]
                if messages:
                    result = await asyncio.to_thread(self.projector.apply_batch, messages)
                    self.totals += result
                    if result.dead_lettered:
                        log.warning("projection.dead_letters", count=result.dead_lettered)
        finally:
            self._started.clear()
            self._consumer = None
            await consumer.stop()

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

    async def lag(self) -> dict[int, int]:
        """Per partition: end offset minus stored position (records not yet applied).

        Raises:
            RuntimeError: ``run()`` is not running.
        """
        ends = await self._end_offsets()
        stored = await asyncio.to_thread(self.stored_positions)
        return {p: max(0, end - stored.get(p, 0)) for p, end in ends.items()}

    async def wait_caught_up(self, timeout_s: float = 30.0) -> None:
        """Return once the stored positions reach the end offsets as they are at the time of the call.

        Waits for ``run()`` (in another task) to start first.

        Raises:
            TimeoutError: not caught up within ``timeout_s`` seconds (the message gives the lag).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await asyncio.wait_for(self._started.wait(), timeout_s)
        targets = await self._end_offsets()
        while True:
            stored = await asyncio.to_thread(self.stored_positions)
            behind = {p: end - stored.get(p, 0) for p, end in targets.items() if stored.get(p, 0) < end}
            if not behind:
                return
            if loop.time() >= deadline:
                raise TimeoutError(f"projection not caught up after {timeout_s} s; records behind: {behind}")
            await asyncio.sleep(0.1)


async def run_until_caught_up(
    settings: Settings, engine: Engine, timeout_s: float = 30.0, group_id: str = "duban-projector"
) -> BatchResult:
    """Run a ``ProjectionConsumer`` until it has applied everything in the topic now, then stop it.

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
