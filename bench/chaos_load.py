"""The chaos harness's load: items taken through their lifecycle over HTTP and the command topic, by
an integrator that sends again (same ids) whatever got no answer. ``Load`` records what was
acknowledged and what was refused, for ``chaos_checks``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from duban.gateway.envelopes import SCHEMA, sign_envelope
from duban.gateway.keys import KeyStore, Scope
from events.sql import make_engine

RESULT_WAIT_S = 20.0
"""How long the integrator waits for a command's outcome on the results topic before sending again."""
GIVE_UP_S = 900.0
"""An item still unanswered after this long (seconds) is recorded as given up (a failed check)."""
STEPS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("dispatch", "dispatcher", "zhao", {"unit": "parks-team-3", "department": "parks"}),
    ("accept", "handling_unit", "li", {"unit": "parks-team-3"}),
    ("submit_rectification", "handling_unit", "li", {"unit": "parks-team-3", "evidence": ["photo://1"]}),
    ("verify", "inspector", "chen", {"unit": "inspection", "passed": True}),
    ("close", "dispatcher", "zhao", {}),
]
RESULTS_TOPIC = "duban.command-results"
LOOK_S = 1.0
"""How often the integrator reads the outcomes that arrived (seconds)."""
COMMANDS_TOPIC = "duban.commands"


@dataclass(frozen=True)
class LoadOptions:
    """``items`` items, ``concurrency`` in flight; even-numbered items go over HTTP, odd ones over
    the command topic; every tenth item gets an illegal ``close`` first."""

    items: int
    concurrency: int


@dataclass
class Load:
    """The load on a gateway at ``gateway_url`` and a broker at ``kafka``; ``database_url`` is where
    the integrator's key is created. After ``run``: ``accepted`` item ids, ``acknowledged`` and
    ``refused`` command ids, ``given_up`` items, ``resent`` requests."""

    gateway_url: str
    kafka: str
    database_url: str
    options: LoadOptions
    accepted: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    given_up: list[str] = field(default_factory=list)
    resent: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _results: dict[str, dict[str, Any]] = field(default_factory=dict)
    _key: str = ""
    _rescan: bool = False

    def item_ids(self) -> list[str]:
        run = datetime.now(UTC).strftime("%H%M%S")
        return [f"chaos-{run}-{n:05d}" for n in range(self.options.items)]

    async def run(self) -> None:
        engine = make_engine(self.database_url)
        _, self._key = KeyStore(engine).create("chaos", Scope.of("*", "*", "*", "*"))
        engine.dispose()
        gate = asyncio.Semaphore(self.options.concurrency)
        stop = asyncio.Event()
        reader = asyncio.create_task(self._read_results(stop))
        producer = _Producer(self.kafka)
        try:
            async with httpx.AsyncClient(
                base_url=self.gateway_url, headers={"X-API-Key": self._key}, timeout=60
            ) as http:

                async def one(n: int, item: str) -> None:
                    async with gate:
                        began = time.monotonic()
                        try:
                            await asyncio.wait_for(
                                self._http_item(http, item, n)
                                if n % 2 == 0
                                else self._topic_item(producer, item, n),
                                GIVE_UP_S,
                            )
                        except TimeoutError:
                            self.given_up.append(item)
                        self.durations[item] = time.monotonic() - began

                await asyncio.gather(*(one(n, item) for n, item in enumerate(self.item_ids())))
        finally:
            self.done.set()
            stop.set()
            await reader
            await producer.stop()

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _post(self, http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
        wait = 0.5
        while True:
            try:
                reply = await http.post(path, json=body)
                if reply.status_code < 500:
                    return reply
            except httpx.HTTPError:
                pass
            self.resent += 1
            await asyncio.sleep(wait)
            wait = min(wait * 2, 5.0)

    async def _http_item(self, http: httpx.AsyncClient, item: str, n: int) -> None:
        at = datetime.now(UTC) - timedelta(minutes=5)
        reply = await self._post(http, "/v1/items", registration(item, at))
        if reply.status_code not in (200, 201, 202):  # 202: registered, no worker has run it yet
            raise RuntimeError(f"registration of {item} refused: {reply.status_code} {reply.text}")
        self.accepted.add(item)
        for body in commands(item, at, illegal_first=n % 10 == 0):
            reply = await self._post(http, f"/v1/items/{item}/commands", body)
            if reply.status_code == 200 and reply.json()["applied"]:
                self.acknowledged.add(body["command_id"])
            elif reply.status_code in (409, 422):
                self.refused.add(body["command_id"])
            else:
                raise RuntimeError(f"{body['command_id']}: {reply.status_code} {reply.text}")

    # -- the command topic ---------------------------------------------------------------------------

    async def _topic_item(self, producer: _Producer, item: str, n: int) -> None:
        at = datetime.now(UTC) - timedelta(minutes=5)
        for step, body in enumerate(commands(item, at, illegal_first=n % 10 == 0)):
            envelope = {"schema": SCHEMA, "item_id": item, "command": body}
            envelope["registration"] = registration(item, at) if step == 0 else None
            value = json.dumps(sign_envelope(envelope, self._key)).encode()
            command_id = body["command_id"]
            while command_id not in self._results:
                await producer.send(COMMANDS_TOPIC, item.encode(), value)
                deadline = time.monotonic() + RESULT_WAIT_S
                while command_id not in self._results and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                if command_id not in self._results:
                    self.resent += 1
                    self._rescan = True  # its outcome may sit below where the reader stands
            result = self._results[command_id]
            if step == 0:  # update-with-start registered the item whatever the command's outcome
                self.accepted.add(item)
            if result.get("applied"):
                self.acknowledged.add(command_id)
            elif result.get("error") in ("IllegalCommand", "MalformedCommand"):
                self.refused.add(command_id)
            else:
                raise RuntimeError(f"{command_id}: {result}")

    async def _read_results(self, stop: asyncio.Event) -> None:
        """Read the results topic into ``_results`` (by command id), a look every ``LOOK_S`` seconds
        with a fresh consumer: from where the last look ended, or from the start when a partition's
        end went down (a broker that restarted empty recreated the topic) or a command was sent
        again (a recreated topic may have grown past the old end between two looks). A look that
        fails (the broker away) is simply tried again."""
        positions: dict[int, int] = {}
        last_ends: dict[int, int] = {}
        while not stop.is_set():
            await asyncio.sleep(LOOK_S)
            consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka, enable_auto_commit=False)
            try:
                await asyncio.wait_for(consumer.start(), 10)
                await consumer.topics()
                found = sorted(consumer.partitions_for_topic(RESULTS_TOPIC) or ())
                parts = [TopicPartition(RESULTS_TOPIC, p) for p in found]
                if not parts:
                    continue
                ends = {tp.partition: int(e) for tp, e in (await consumer.end_offsets(parts)).items()}
                if self._rescan or any(end < last_ends.get(p, 0) for p, end in ends.items()):
                    positions.clear()  # recreated (or an outcome overdue): read from the start
                    self._rescan = False
                last_ends = ends
                consumer.assign(parts)
                for tp in parts:
                    consumer.seek(tp, min(positions.get(tp.partition, 0), ends[tp.partition]))
                while any(
                    p < ends[tp.partition] for tp, p in [(tp, await consumer.position(tp)) for tp in parts]
                ):
                    batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 10)
                    if not batch:
                        break
                    for tp, records in batch.items():
                        for record in records:
                            result = json.loads(record.value or b"{}")
                            self._results.setdefault(str(result.get("command_id")), result)
                            positions[tp.partition] = record.offset + 1
            except Exception:  # the broker is away: the next look tries again
                continue
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()


class _Producer:
    """A producer that survives the broker's death: a failed send is retried on a new producer."""

    def __init__(self, kafka: str) -> None:
        self.kafka = kafka
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        wait = 0.5
        while True:
            try:
                producer = await self._started()
                await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 15)
                return
            except Exception:  # refused, timed out, the broker away: a new producer, later
                await self.stop()
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.kafka, request_timeout_ms=10_000)
                await producer.start()
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()


def registration(item: str, at: datetime) -> dict[str, Any]:
    """The registration of ``item``, reported at ``at`` (a greenery problem in Xicheng: parks)."""
    return {"item_id": item, "service_code": "greenery", "town": "xicheng", "reported_at": at.isoformat()} | {
        "actor": "wang"
    }


def commands(item: str, at: datetime, illegal_first: bool) -> list[dict[str, Any]]:
    """The lifecycle's commands of ``item`` (a second apart after ``at``), with an illegal ``close``
    first when ``illegal_first``."""
    steps = ([("close", "dispatcher", "zhao", {})] if illegal_first else []) + STEPS
    return [
        {"command_id": f"{item}/{n}-{kind}", "kind": kind, "actor": actor, "role": role}
        | {"occurred_at": (at + timedelta(seconds=n + 1)).isoformat()}
        | fields
        for n, (kind, role, actor, fields) in enumerate(steps)
    ]
