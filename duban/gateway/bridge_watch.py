"""Keeps the command topic bridge reading after the broker lost its topics.

A broker that restarts empty (the embedded one keeps nothing) recreates ``duban.commands`` from offset
0, while the bridge's faust consumer stays at its old position: Kafka answers such a fetch with
OFFSET_OUT_OF_RANGE and the consumer starts again from the earliest record, but a broker that answers
with nothing (Tansu) would leave the bridge deaf until the new topic grew past the old position.
``RunningBridge`` watches for that: when a partition's end offset, looked at every ``LOOK_EVERY_S``
seconds, has gone down (a live topic's never does; Tansu's end offsets may lag the last delivered record
by a batch, so a comparison with the bridge's own position would misfire), the process exits at once
with status ``EXIT_RESTART`` (75, EX_TEMPFAIL) for its supervisor (Compose's restart policy, systemd) to
start it afresh: a faust app cannot be restarted in place reliably (measured: stopping one whose broker
vanished hangs), and a crash is a case the bridge already survives — the batch in hand is not
acknowledged, so it is delivered again and applied once (the items dedupe by command id), and the new
process reads the recreated topic from its start (the group's offsets were lost with the broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

log = structlog.get_logger("duban.bridge")

LOOK_EVERY_S = 2.0
EXIT_RESTART = 75


def exit_for_restart() -> None:
    """End the process at once with ``EXIT_RESTART`` (no clean-up: nothing is acknowledged)."""
    sys.stderr.flush()
    os._exit(EXIT_RESTART)


class RunningBridge:
    """A running bridge app (``app``) and its watch; ``seen`` maps partition → the highest offset
    delivered (``note_delivered`` keeps it); ``on_recreated`` is called once the commands topic is
    found recreated (default: ``exit_for_restart``)."""

    def __init__(
        self,
        start_app: Callable[[RunningBridge], Awaitable[Any]],
        stop_app: Callable[[Any], Awaitable[None]],
        on_recreated: Callable[[], None] = exit_for_restart,
    ) -> None:
        self._start_app, self._stop_app, self._on_recreated = start_app, stop_app, on_recreated
        self.app: Any = None
        self.seen: dict[int, int] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def note_delivered(self, partition: int, offset: int) -> None:
        """Record that the message at ``offset`` of ``partition`` was delivered."""
        if offset > self.seen.get(partition, -1):
            self.seen[partition] = offset

    async def start(
        self, bootstrap: str, topic: str, ensure_topics: Callable[[], Awaitable[Any]] | None = None
    ) -> None:
        """Start the app and the watch over ``topic`` on ``bootstrap``; at each look the watch
        recreates missing topics with ``ensure_topics`` (a broker that restarted empty lost them,
        and integrators' commands have nowhere to go until they exist)."""
        self.app = await self._start_app(self)
        self._watch = asyncio.create_task(self._watch_topic(bootstrap, topic, ensure_topics))

    async def stop(self) -> None:
        """Stop the watch, then the app (after its batch in hand)."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._stop_app(self.app)

    async def _ends(self, bootstrap: str, topic: str) -> dict[int, int] | None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        try:
            await asyncio.wait_for(consumer.start(), 5)
            await consumer.topics()
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not parts:
                return None
            ends = await asyncio.wait_for(consumer.end_offsets(parts), 5)
            return {tp.partition: int(ends[tp]) for tp in parts}
        except Exception:  # the broker is away: nothing to conclude now
            return None
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _watch_topic(
        self, bootstrap: str, topic: str, ensure_topics: Callable[[], Awaitable[Any]] | None
    ) -> None:
        last: dict[int, int] = {}
        while not self._stopping.is_set():
            await asyncio.sleep(LOOK_EVERY_S)
            if ensure_topics is not None:
                with contextlib.suppress(Exception):  # the broker is away: the next look tries again
                    await ensure_topics()
            ends = await self._ends(bootstrap, topic)
            if ends is None:
                continue
            shrunk = any(end < last.get(p, 0) for p, end in ends.items())
            last = ends
            if not shrunk:
                continue
            log.error(
                "bridge.topic_recreated", topic=topic, seen=dict(self.seen), ends=ends, exit=EXIT_RESTART
            )
            self._on_recreated()
            return
