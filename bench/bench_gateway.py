"""Benchmark: commands per second through the gateway's HTTP API and its command topic, against the
same commands sent to Temporal directly — all in one run, on the same servers.

Set-up (all started here): a Temporal dev server, a Tansu broker on a free port, a SQLite database,
one ``duban worker`` process and one ``duban serve`` process (the gateway with its command topic
bridge), as they run in production. Three modes take ``--items`` fresh items each through the same
lifecycle (register, dispatch, accept, submit the rectification, verify, close), ``--concurrency``
items at a time, an item's steps one after the other:

* direct (the baseline): this process's Temporal client — ``duban.services.register_item`` and
  ``apply_item_command``, with the registration routed by the catalogue as the gateway does it;
* HTTP: ``POST /v1/items`` and ``POST /v1/items/{id}/commands`` with a key; each request's latency
  is kept (p50, p99);
* topic: every item's five envelopes published to ``duban.commands`` (the registration rides on
  the dispatch, update-with-start), timed until the five outcomes of every item are on
  ``duban.command-results``.

Prints the lifecycle commands per second (five per item) of each mode and each mode's ratio to the
baseline (goal: ≥ 0.7). The machine is shared and noisy: only ratios within one run mean anything.

Usage: python bench/bench_gateway.py [--items 150] [--concurrency 16] [--rounds 3]

The modes take turns (``--rounds``), each round with its share of the items.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from servers import free_port, start_tansu
from temporalio.testing import WorkflowEnvironment

from duban import services
from duban.gateway.catalogue import load_catalogue
from duban.gateway.envelopes import SCHEMA, sign_envelope
from duban.gateway.intake import CommandBody, RegisterBody, command_of, registration_of
from duban.gateway.keys import KeyStore, Scope
from duban.stack.binaries import find_binary
from duban.stack.probes import wait_for_port
from events.sql import make_engine
from events.topics import create_missing_topics
from workflows import search_attributes as sa
from workflows.item_workflow import ItemWorkflowInput
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook

STEPS = [
    ("dispatch", "dispatcher", "zhao", {"unit": "parks-team-3"}),
    ("accept", "handling_unit", "li", {"unit": "parks-team-3"}),
    ("submit_rectification", "handling_unit", "li", {"unit": "parks-team-3", "evidence": ["photo://1"]}),
    ("verify", "inspector", "chen", {"unit": "inspection", "passed": True}),
    ("close", "dispatcher", "zhao", {}),
]


def registration(item: str, at: datetime) -> dict[str, Any]:
    return {
        "item_id": item,
        "service_code": "greenery",
        "town": "xicheng",
        "reported_at": at.isoformat(),
        "actor": "wang",
    }


def commands(item: str, at: datetime) -> list[dict[str, Any]]:
    return [
        {"command_id": f"{item}/{n}", "kind": kind, "actor": actor, "role": role}
        | {"occurred_at": (at + timedelta(seconds=n + 1)).isoformat()}
        | fields
        for n, (kind, role, actor, fields) in enumerate(STEPS)
    ]


async def in_parallel(items: list[str], concurrency: int, one: Any) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def guarded(item: str) -> None:
        async with gate:
            await one(item)

    started = time.perf_counter()
    await asyncio.gather(*(guarded(i) for i in items))
    return time.perf_counter() - started


async def direct(env: WorkflowEnvironment, queue: str, items: list[str], concurrency: int) -> float:
    catalogue, rulebook = load_catalogue(), load_rulebook(DEFAULT_RULEBOOK_PATH)
    at = datetime.now(UTC) - timedelta(minutes=10)

    async def one(item: str) -> None:
        reg, _ = registration_of(
            RegisterBody(**registration(item, at)), catalogue.in_force(at), rulebook, "bench"
        )
        await services.register_item(env.client, ItemWorkflowInput(reg, []), queue)
        for body in commands(item, at):
            outcome = await services.apply_item_command(
                env.client, item, command_of(CommandBody(**body), "bench")
            )
            assert outcome.applied, outcome

    return await in_parallel(items, concurrency, one)


async def over_http(url: str, key: str, items: list[str], concurrency: int, latencies: list[float]) -> float:
    at = datetime.now(UTC) - timedelta(minutes=10)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60, limits=limits) as http:

        async def post(path: str, body: dict[str, Any]) -> None:
            started = time.perf_counter()
            answer = await http.post(path, json=body)
            latencies.append(time.perf_counter() - started)
            assert answer.status_code in (200, 201), answer.text

        async def one(item: str) -> None:
            await post("/v1/items", registration(item, at))
            for body in commands(item, at):
                await post(f"/v1/items/{item}/commands", body)

        return await in_parallel(items, concurrency, one)


async def over_topic(kafka: str, key: str, items: list[str]) -> float:
    at = datetime.now(UTC) - timedelta(minutes=10)
    messages = []
    for item in items:
        for n, body in enumerate(commands(item, at)):
            envelope = {"schema": SCHEMA, "item_id": item, "command": body}
            envelope["registration"] = registration(item, at) if n == 0 else None
            messages.append((item.encode(), json.dumps(sign_envelope(envelope, key)).encode()))
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    await consumer.topics()
    partitions = [
        TopicPartition("duban.command-results", p)
        for p in consumer.partitions_for_topic("duban.command-results") or ()
    ]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for p in partitions:
        await consumer.position(p)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    wanted, done = set(items), 0
    started = time.perf_counter()
    try:
        await asyncio.gather(*[await producer.send("duban.commands", v, key=k) for k, v in messages])
        while done < len(messages):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    result = json.loads(record.value or b"{}")
                    if result.get("item_id") in wanted:
                        assert result["applied"], result
                        done += 1
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {done} of {len(messages)} outcomes in 10 minutes")
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main(items: int, concurrency: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    kafka_port, gateway_port = free_port(), free_port()
    kafka = f"127.0.0.1:{kafka_port}"
    broker = start_tansu(kafka_port)
    procs: list[subprocess.Popen[bytes]] = [broker]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")), search_attributes=sa.ALL_KEYS
    )
    try:
        database = f"sqlite:///{tmp / 'bench.db'}"
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        settings_env = os.environ | {
            "DUBAN_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "DUBAN_KAFKA_BOOTSTRAP": kafka,
            "DUBAN_KAFKA_IDEMPOTENT": "false",
            "DUBAN_DATABASE_URL": database,
            "DUBAN_DATA_DIR": str(tmp),
            "DUBAN_TASK_QUEUE": queue,
            "DUBAN_LOG_LEVEL": "ERROR",
        }
        names = [
            "duban.item-events",
            "duban.item-events.dlq",
            "duban.commands",
            "duban.command-results",
            "duban.commands.dlq",
        ]
        await create_missing_topics(kafka, names, 3)
        _, key = KeyStore(make_engine(database)).create("bench", Scope.of("*", "*", "*", "*"))
        for args in (["worker"], ["serve", "--port", str(gateway_port), "--no-webhooks"]):
            log = (tmp / f"{args[0]}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "duban", *args], env=settings_env, stdout=log, stderr=log
                )
            )
        wait_for_port("127.0.0.1", gateway_port, 60)
        gateway = f"http://127.0.0.1:{gateway_port}"
        for _ in range(240):
            if httpx.get(f"{gateway}/readyz", timeout=5).status_code == 200:
                break
            await asyncio.sleep(0.25)
        warm = [f"warm-{uuid.uuid4().hex[:8]}-{i}" for i in range(4)]
        # Warm-up: every path once (the bridge's group join, the worker's caches), not timed.
        await direct(env, queue, warm, concurrency)
        await over_http(gateway, key, [w + "h" for w in warm], concurrency, [])
        await over_topic(kafka, key, [w + "t" for w in warm])
        latencies: list[float] = []
        wall = dict.fromkeys(("direct", "http", "topic"), 0.0)
        for round_ in range(rounds):  # the modes take turns, so drift of the machine hits each alike
            ids = {
                m: [f"{m}-{round_}-{uuid.uuid4().hex[:8]}-{i}" for i in range(items // rounds)] for m in wall
            }
            wall["direct"] += await direct(env, queue, ids["direct"], concurrency)
            wall["http"] += await over_http(gateway, key, ids["http"], concurrency, latencies)
            wall["topic"] += await over_topic(kafka, key, ids["topic"])
        items = rounds * (items // rounds)
        rate = {mode: 5 * items / seconds for mode, seconds in wall.items()}
        print(f"{items} items × 5 commands, {concurrency} items at a time (topic: all published at once)")
        base = rate["direct"]
        print(f"  direct (Temporal client)   {base:8.1f} commands/s   (baseline)")
        print(
            f"  HTTP API                   {rate['http']:8.1f} commands/s   ratio {rate['http'] / base:.2f}"
        )
        print(
            f"  command topic              {rate['topic']:8.1f} commands/s   ratio {rate['topic'] / base:.2f}"
        )
        print(
            f"  HTTP latency               p50 {1000 * statistics.median(latencies):.0f} ms, "
            f"p99 {1000 * percentile(latencies, 0.99):.0f} ms over {len(latencies)} requests"
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await env.shutdown()
        gc.collect()  # free temporalio's clients while the loop lives (sdk-python#300)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--rounds", type=int, default=3, help="Turns each mode takes (items split among them)."
    )
    args = parser.parse_args()
    asyncio.run(main(args.items, args.concurrency, args.rounds))
