"""Benchmark: rankings at a million items, and projection throughput against raw consumption.

Part 1 (no broker): one million synthetic items (50 departments, 200 towns, 2,000 communities and
5,000 grids, reported over 2025, 80% with a deadline, 88% of those on time) are aggregated into
``unit_day_counters`` the way the projection would, and also stored one row per item in
``item_view``. It times a monthly ranking and the monthly indicators of every grid from the counters
(what ``duban rank`` and ``duban indicators`` run) against the baseline, the same ranking computed by
scanning ``item_view``; and checks both give the same on-time counts.

Part 2 (the embedded broker, started here on a free port): N encoded events of real items from the
domain core are published to a fresh topic; the baseline consumes them raw with aiokafka; the
projection consumes them with ``ProjectionConsumer`` into SQLite. Prints both rates in events per
second and their ratio. The machine is shared and noisy: only ratios within one run mean anything.

Usage: python bench/bench_rankings.py [--items 1000000] [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from servers import free_port, start_tansu
from sqlalchemy import Engine, case, func, insert, select

from activities.event_recording import EventRecorder
from duban.config import Settings
from duban.kafka import make_producer
from duban.stack.probes import ensure_topics
from events.codec import decode_event, encode_event
from events.envelope import EventEnvelope
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.consumer import ProjectionConsumer
from projections.indicators import indicators
from projections.projector import ItemProjector, RawMessage
from projections.rankings import rank_units
from workflows import item_rules
from workflows.activity_contracts import RecordEventsInput
from workflows.item_model import ItemCommand, Registration

MAY = (date(2025, 5, 1), date(2025, 6, 1))
WORKER_ACTIVITY_SLOTS = 64
"""Recordings in flight at once in ``end_to_end``: a worker's activity slots (``duban worker``)."""


def synthetic_items(n: int, seed: int = 7) -> list[tuple[str, str, str, str, date, bool | None]]:
    """``(department, town, community, grid, local day closed, on time or None)`` per item."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        grid = rng.randrange(5000)
        community, town = grid // 2.5, grid // 25
        day = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
        on_time = (rng.random() < 0.88) if rng.random() < 0.8 else None
        out.append(
            (
                f"D{rng.randrange(50):02d}",
                f"T{town:03d}",
                f"C{int(community):04d}",
                f"G{grid:04d}",
                day,
                on_time,
            )
        )
    return out


def load(engine: Engine, items: list[tuple[str, str, str, str, date, bool | None]]) -> None:
    buckets: dict[tuple[str, str, date], Counter[str]] = {}
    views = []
    for i, (dept, town, community, grid, day, on_time) in enumerate(items):
        bumps = {"registered": 1, "closed": 1, "dispatched": 1, "verified": 1, "verified_passed": 1}
        if on_time is None:
            bumps["closed_no_deadline"] = 1
        else:
            bumps |= {"registered_with_deadline": 1, "closed_with_deadline": 1}
            bumps["closed_on_time" if on_time else "closed_overdue"] = 1
        for level, key in (("department", dept), ("town", town), ("community", community), ("grid", grid)):
            buckets.setdefault((level, key, day), Counter()).update(bumps)
        at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        views.append(
            {"item_id": f"I{i:07d}", "category": "litter", "department": dept, "unit": dept, "town": town,
             "community": community, "grid": grid, "zone": "UTC", "order_id": "", "district": "",
             "calendar": "",
             "stage": "closed", "registered_at": at, "resolution_deadline": None if on_time is None else at,
             "closed_at": at, "on_time": on_time, "overdue": on_time is False, "escalation_level": 0,
             "warned": False, "last_sequence": 6, "last_event_at": at}
        )  # fmt: skip
    rows = [
        {"level": lv, "unit_key": key, "day": day, **{c: counts.get(c, 0) for c in rm.COUNTER_COLUMNS}}
        for (lv, key, day), counts in buckets.items()
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), 50_000):
            conn.execute(insert(rm.unit_day_counters), rows[start : start + 50_000])
        for start in range(0, len(views), 50_000):
            conn.execute(insert(rm.item_view), views[start : start + 50_000])
    print(f"  {len(items):,} items → {len(rows):,} counter rows")


def scan_ranking(engine: Engine, start: date, end: date) -> dict[str, tuple[int, int]]:
    """Baseline: on time / closed with a deadline per department, scanning every item's row."""
    v = rm.item_view.c
    lo, hi = (datetime(d.year, d.month, d.day, tzinfo=UTC) for d in (start, end))
    query = (
        select(
            v.department, func.sum(case((v.on_time.is_(True), 1), else_=0)), func.count(v.resolution_deadline)
        )
        .where(v.closed_at >= lo, v.closed_at < hi)
        .group_by(v.department)
    )
    with engine.connect() as conn:
        return {d: (int(a), int(b)) for d, a, b in conn.execute(query)}


def timed(fn, repeat: int = 5):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def part_one(items: int) -> None:
    print(f"Part 1: rankings at {items:,} items")
    folder = tempfile.TemporaryDirectory()
    engine = make_engine(f"sqlite:///{Path(folder.name) / 'million.db'}")
    rm.create_tables(engine)
    load(engine, synthetic_items(items))
    ranking_s, ranked = timed(lambda: rank_units(engine, "department", *MAY))
    grids_s, grid_rows = timed(lambda: indicators(engine, "grid", *MAY))
    scan_s, scanned = timed(lambda: scan_ranking(engine, *MAY))
    assert {r.unit_key: (r.on_time, r.closed_with_deadline) for r in ranked} == scanned, "the two disagree"
    print(f"  monthly department ranking from counters: {ranking_s * 1000:8.1f} ms")
    print(f"  monthly indicators of {len(grid_rows):,} grids:     {grids_s * 1000:8.1f} ms")
    print(f"  baseline, scanning item_view:             {scan_s * 1000:8.1f} ms")
    print(f"  ratio scan / counters (ranking): {scan_s / ranking_s:.1f}")


def domain_events(n: int) -> list[tuple[bytes, bytes]]:
    """``(item id, encoded event)`` of real items (register, dispatch, accept, submit, verify, close)."""
    out: list[tuple[bytes, bytes]] = []
    at = datetime(2025, 5, 1, 8, tzinfo=UTC)
    i = 0
    while len(out) < n:
        reg = Registration(f"B{i:06d}", "litter", at, department=f"D{i % 50:02d}", town=f"T{i % 200:03d}",
                           resolution_deadline=at + timedelta(hours=24), deadline_origin="rule")  # fmt: skip
        state, events = item_rules.register(reg)
        for k, kind in enumerate(("dispatch", "accept", "submit_rectification", "verify", "close")):
            actor = "inspector:x" if kind == "verify" else "unit:x"
            evidence = ["photo://1"] if kind == "submit_rectification" else []
            cmd = ItemCommand(
                f"{reg.item_id}:{kind}",
                kind,
                actor,
                at + timedelta(minutes=k + 1),
                unit="U",
                evidence=evidence,
            )
            events += item_rules.apply_command(state, cmd)
        out += [(e.item_id.encode(), encode_event(e)) for e in events]
        i += 1
    return out[:n]


def store_all(engine: Engine, events: list[tuple[bytes, bytes]]) -> None:
    """Record ``events`` in ``engine``'s event store (as the recorder does before it publishes)."""
    store = EventStore(engine)
    store.create()
    for start in range(0, len(events), 2000):
        chunk = [raw for _, raw in events[start : start + 2000]]
        store.record([decode_event(raw) for raw in chunk], chunk)


async def part_two(n: int) -> None:
    print(f"Part 2: projection of {n:,} events against raw consumption")
    port = free_port()
    broker = start_tansu(port)
    try:
        bootstrap = f"127.0.0.1:{port}"
        settings = replace(Settings(), kafka_bootstrap=bootstrap, kafka_idempotent=False, topic_partitions=3)
        await ensure_topics(settings)
        producer = make_producer(settings)
        await producer.start()
        try:
            events = domain_events(n)
            for key, value in events:
                await producer.send(settings.events_topic, value, key=key)  # keyed by item, as recorded
            await producer.flush()
        finally:
            await producer.stop()
        raw_rate = await consume(bootstrap, settings.events_topic, n, None)
        folder = tempfile.TemporaryDirectory()
        engine = make_engine(f"sqlite:///{Path(folder.name) / 'projection.db'}")
        projector = ItemProjector(engine)
        store_all(engine, events)  # the projection applies only what the event store vouches for
        projection_rate = await consume(bootstrap, settings.events_topic, n, projector)
        with engine.connect() as conn:
            applied = conn.execute(select(func.count()).select_from(rm.applied_events)).scalar()
            dead = conn.execute(select(func.count()).select_from(rm.dead_letters)).scalar()
        assert (applied, dead) == (n, 0), (applied, dead)
        service_rate = await end_to_end(settings, Path(folder.name) / "service.db", n)
        print(f"  raw consumption (aiokafka):                 {raw_rate:10.0f} events/s")
        print(f"  the same consumption, projected into SQLite: {projection_rate:10.0f} events/s")
        print(f"  ratio projection / raw: {projection_rate / raw_rate:.3f}")
        print(
            f"  end to end (recorded, published, projected): {service_rate:10.0f} events/s (a rate, no ratio)"
        )
    finally:
        broker.terminate()
        broker.wait(10)


async def end_to_end(settings: Settings, path: Path, n: int) -> float:
    """Events per second from the first event handed to the recorder (stored, then published, one
    item's events per step, ``WORKER_ACTIVITY_SLOTS`` steps in flight at any moment, as on a worker:
    a step starts as soon as one ends) until a running ``ProjectionConsumer``
    (joined to its group beforehand) has applied every one of them to the read models."""
    engine = make_engine(f"sqlite:///{path}")
    fresh = replace(settings, events_topic=f"{settings.events_topic}.e2e")
    await ensure_topics(fresh)
    consumer = ProjectionConsumer(fresh, engine, "bench-e2e")
    stop = asyncio.Event()
    runner = asyncio.create_task(consumer.run(stop))
    await consumer.wait_caught_up(60)  # joined, nothing to do yet
    producer = make_producer(settings)
    await producer.start()
    recorder = EventRecorder(EventStore(engine), producer, fresh.events_topic)
    events = [decode_event(raw) for _, raw in domain_events(n)]
    by_item: dict[str, list[EventEnvelope]] = {}
    for event in events:
        by_item.setdefault(event.item_id, []).append(event)
    steps = list(by_item.values())
    slots = asyncio.Semaphore(WORKER_ACTIVITY_SLOTS)

    async def record(step: list[EventEnvelope]) -> None:
        async with slots:
            await recorder.record_events(RecordEventsInput(step))

    try:
        started = time.monotonic()
        await asyncio.gather(*(record(s) for s in steps))
        while await consumer.lag() or any((await consumer.kafka_lag()).values()):
            await asyncio.sleep(0.05)
        rate = n / (time.monotonic() - started)
    finally:
        stop.set()
        await runner
        await producer.stop()
    with engine.connect() as conn:
        applied = conn.execute(select(func.count()).select_from(rm.applied_events)).scalar()
    assert applied == n, (applied, n)
    return rate


async def consume(bootstrap: str, topic: str, n: int, projector: ItemProjector | None) -> float:
    """Events per second reading the ``n`` events of ``topic`` from the start, applying each fetched
    batch with ``projector`` (the projection's own step) or only reading them (the baseline)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        started, seen = time.monotonic(), 0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                seen += len(records)
                if projector is not None:
                    projector.apply_batch(
                        [RawMessage(tp.topic, tp.partition, r.offset, r.key, r.value) for r in records]
                    )
        return n / (time.monotonic() - started)
    finally:
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000)
    options = parser.parse_args()
    part_one(options.items)
    asyncio.run(part_two(options.events))
