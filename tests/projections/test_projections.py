"""The item projection, its rankings and its Kafka consumer, on SQLite and PostgreSQL.

Events come from the real domain core (workflows.item_rules). Expected counters, views and ranks
below are worked out by hand from the scenario, not copied from the projector's output.

Scenario (departments urban, housing, transport; days are LOCAL to each item's zone):
- A urban/Sibaoshan/C1/G1, Asia/Shanghai, 24 h deadline, closed on time 2022-03-01.
- B housing/Zhongbu/C2/G2, Asia/Shanghai, 24 h deadline, registered 03-01, warned 03-01T20:00Z
  (03-02 local), breached + escalated 03-02T02:00Z, closed late 03-02T06:00Z.
- C urban/Sibaoshan/C1/G3, America/New_York, no deadline, closed 2022-01-01T03:00Z = 2021-12-31 local.
- D housing/Zhongbu/C2/G2, Asia/Shanghai, deadline, cancelled 2022-03-03.
- E transport/Zhongbu/C3/G4, UTC, deadline, closed on time 2022-03-05.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from helpers.projections import fresh, store
from helpers.servers import topics_ready
from sqlalchemy import Engine, func, insert, select

from duban.config import Settings
from events.codec import encode_event, event_to_dict
from events.envelope import EventEnvelope
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.consumer import ProjectionConsumer, run_until_caught_up
from projections.projector import ItemProjector, RawMessage, table_checksum
from projections.rankings import RankingRow, format_table, overdue_by_department, rank_units, to_csv, to_json
from workflows import item_rules
from workflows.item_model import CommandKind, ItemCommand, ItemState, Registration

TOPIC = "duban.item-events"
PARTITION = {"A": 0, "B": 1, "C": 2, "D": 0, "E": 1}
D = date


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _item(
    item_id: str, where: tuple[str, str, str, str, str], at: datetime, hours: int | None
) -> tuple[ItemState, list[EventEnvelope]]:
    dept, town, community, grid, zone = where
    deadline = at + timedelta(hours=hours) if hours else None
    reg = Registration(
        item_id=item_id, category="litter", reported_at=at, department=dept, unit=f"{dept}-team",
        town=town, community=community, grid=grid, zone=zone, source="patrol",
        resolution_deadline=deadline, deadline_origin="rule" if deadline else "none",
    )  # fmt: skip
    return item_rules.register(reg)


def _do(
    state: ItemState, kind: str, at: datetime, actor: str = "unit:team", **kw: Any
) -> list[EventEnvelope]:
    if kind == CommandKind.DISPATCH:
        kw.setdefault("unit", state.unit)
    if kind == CommandKind.SUBMIT_RECTIFICATION:
        kw.setdefault("evidence", ["photo.jpg"])
    cmd = ItemCommand(f"{state.item_id}:{kind}", kind, actor, at, **kw)
    return item_rules.apply_command(state, cmd)


def _close_loop(state: ItemState, times: list[datetime]) -> list[EventEnvelope]:
    kinds = [CommandKind.DISPATCH, CommandKind.ACCEPT, CommandKind.SUBMIT_RECTIFICATION]
    events = [e for k, at in zip(kinds, times, strict=False) for e in _do(state, k, at)]
    events += _do(state, CommandKind.VERIFY, times[3], "inspector:li")
    return events + _do(state, CommandKind.CLOSE, times[4], "office:zhang")


def scenario() -> dict[str, list[EventEnvelope]]:
    """The five items' events, per item, in order."""
    out = {}
    st, out["A"] = _item("A", ("urban", "Sibaoshan", "C1", "G1", "Asia/Shanghai"), utc(2022, 3, 1, 1), 24)
    out["A"] += _close_loop(
        st, [utc(2022, 3, 1, 1, 10), utc(2022, 3, 1, 1, 20), *(utc(2022, 3, 1, h) for h in (5, 6, 7))]
    )
    st, out["B"] = _item("B", ("housing", "Zhongbu", "C2", "G2", "Asia/Shanghai"), utc(2022, 3, 1, 2), 24)
    out["B"] += _do(st, CommandKind.DISPATCH, utc(2022, 3, 1, 2, 10)) + _do(
        st, CommandKind.ACCEPT, utc(2022, 3, 1, 3)
    )
    out["B"] += item_rules.fire_due_timers(st, utc(2022, 3, 2, 3))  # warned, breached, escalated
    out["B"] += _do(st, CommandKind.SUBMIT_RECTIFICATION, utc(2022, 3, 2, 4))
    out["B"] += _do(st, CommandKind.VERIFY, utc(2022, 3, 2, 5), "inspector:li")
    out["B"] += _do(st, CommandKind.CLOSE, utc(2022, 3, 2, 6), "office:zhang")
    st, out["C"] = _item(
        "C", ("urban", "Sibaoshan", "C1", "G3", "America/New_York"), utc(2021, 12, 31, 20), None
    )
    out["C"] += _close_loop(st, [utc(2021, 12, 31, 20, m) for m in (10, 20, 40, 50)] + [utc(2022, 1, 1, 3)])
    st, out["D"] = _item("D", ("housing", "Zhongbu", "C2", "G2", "Asia/Shanghai"), utc(2022, 3, 3), 24)
    out["D"] += _do(st, CommandKind.CANCEL, utc(2022, 3, 3, 1), "office:zhang", reason="duplicate report")
    st, out["E"] = _item("E", ("transport", "Zhongbu", "C3", "G4", "UTC"), utc(2022, 3, 5, 8), 24)
    out["E"] += _close_loop(st, [utc(2022, 3, 5, h) for h in (9, 10, 11, 12, 13)])
    return out


def to_messages(events: list[EventEnvelope], offsets: dict[int, int] | None = None) -> list[RawMessage]:
    """Encode events as Kafka records: partition per item, offsets continuing from ``offsets``."""
    offsets = offsets if offsets is not None else {}
    out = []
    for ev in events:
        part = PARTITION.get(ev.item_id, 0)
        out.append(RawMessage(TOPIC, part, offsets.get(part, 0), ev.item_id.encode(), encode_event(ev)))
        offsets[part] = offsets.get(part, 0) + 1
    return out


def in_time_order(per_item: dict[str, list[EventEnvelope]]) -> list[EventEnvelope]:
    return sorted((e for evs in per_item.values() for e in evs), key=lambda e: (e.occurred_at, e.sequence))


ALL = scenario()
MESSAGES = to_messages(in_time_order(ALL))
C = rm.COUNTER_COLUMNS  # names only; the expected values below are worked out by hand
AREA_LEVELS = ("department", "town", "community", "grid")
REG, REG_DL, CLOSED_ON_TIME, CLOSED_LATE, CLOSED_NO_DL, CANC = (
    {"registered": 1},
    {"registered": 1, "registered_with_deadline": 1},
    {"closed": 1, "closed_with_deadline": 1, "closed_on_time": 1},
    {"closed": 1, "closed_with_deadline": 1, "closed_overdue": 1, "warned": 1, "breached": 1, "escalated": 1},
    {"closed": 1, "closed_no_deadline": 1},
    {"cancelled": 1},
)
DISP, VER = {"dispatched": 1}, {"verified": 1, "verified_passed": 1}
# an item's rectification and close-out also count for its registration day and units (cohort)
DONE, GONE = {"cohort_rectified": 1, "cohort_closed": 1}, {"cohort_withdrawn": 1}
DONE_ON_TIME = {**REG_DL, **DISP, **VER, **CLOSED_ON_TIME, **DONE}
DONE_NO_DEADLINE = {**REG, **DISP, **VER, **CLOSED_NO_DL, **DONE}
SBS, ZB = "Sibaoshan", "Zhongbu"


def hours(n: int) -> dict[str, int]:
    return {"handling_seconds": n * 3600}


# (department, local day) -> counters, and the areas of those rows (town, community, grid).
BY_DEPT = {
    ("urban", D(2022, 3, 1)): ({**DONE_ON_TIME, **hours(6)}, (SBS, "C1", "G1")),
    ("urban", D(2021, 12, 31)): ({**DONE_NO_DEADLINE, **hours(7)}, (SBS, "C1", "G3")),
    ("housing", D(2022, 3, 1)): ({**REG_DL, **DISP, **DONE}, (ZB, "C2", "G2")),  # B: done on the 2nd
    ("housing", D(2022, 3, 2)): ({**VER, **CLOSED_LATE, **hours(28)}, (ZB, "C2", "G2")),
    ("housing", D(2022, 3, 3)): ({**REG_DL, **CANC, **GONE}, (ZB, "C2", "G2")),
    ("transport", D(2022, 3, 5)): ({**DONE_ON_TIME, **hours(5)}, (ZB, "C3", "G4")),
}  # fmt: skip


def _category_rows() -> dict[tuple[str, str, date], tuple[int, ...]]:
    """Every item is "litter": its category rows are the departments' rows of each day, added up."""
    by_day: dict[date, dict[str, int]] = {}
    for (_, day), (counts, _) in BY_DEPT.items():
        total = by_day.setdefault(day, {})
        for name, n in counts.items():
            total[name] = total.get(name, 0) + n
    return {("category", "litter", day): tuple(t.get(c, 0) for c in C) for day, t in by_day.items()}


EXPECTED_COUNTERS = {
    (level, key, day): tuple(counts.get(c, 0) for c in C)
    for (dept, day), (counts, areas) in BY_DEPT.items()
    for level, key in zip(AREA_LEVELS, (dept, *areas), strict=True)
} | _category_rows()  # no "order" rows: none of the items belongs to a supervision order


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Empty projection tables on a temporary SQLite file or in the session's PostgreSQL database,
    whose event store holds every event of the scenario (the projection applies only stored events)."""
    url = f"sqlite:///{tmp_path / 'p.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    fresh(eng)
    store(eng, in_time_order(ALL))
    reset(eng)
    yield eng
    eng.dispose()


def reset(eng: Engine) -> None:
    rm.drop_tables(eng)
    rm.create_tables(eng)


def counters(eng: Engine) -> dict[tuple[str, str, date], tuple[int, ...]]:
    with eng.connect() as conn:
        rows = conn.execute(select(rm.unit_day_counters)).mappings()
        return {(r["level"], r["unit_key"], r["day"]): tuple(r[c] for c in C) for r in rows}


def views(eng: Engine) -> dict[str, dict]:
    with eng.connect() as conn:
        return {r["item_id"]: dict(r) for r in conn.execute(select(rm.item_view)).mappings()}


def positions(eng: Engine) -> dict[int, int]:
    pp = rm.projection_positions.c
    with eng.connect() as conn:
        return {int(p): int(n) for p, n in conn.execute(select(pp.partition, pp.next_offset))}


def live_checksum(eng: Engine) -> str:
    return table_checksum(eng, rm.READ_MODEL_TABLES)


def test_counters_and_views_match_the_scenario_by_hand(engine: Engine) -> None:
    result = ItemProjector(engine).apply_batch(MESSAGES)
    assert (result.applied, result.duplicates, result.dead_lettered) == (29, 0, 0)
    assert counters(engine) == EXPECTED_COUNTERS
    v = views(engine)
    fields = ("stage", "on_time", "overdue", "escalation_level", "warned", "last_sequence")
    assert {k: tuple(x[f] for f in fields) for k, x in v.items()} == {
        "A": ("closed", True, False, 0, False, 6), "B": ("closed", False, True, 1, True, 9),
        "C": ("closed", None, False, 0, False, 6), "D": ("cancelled", None, False, 0, False, 2),
        "E": ("closed", True, False, 0, False, 6),
    }  # fmt: skip
    b = v["B"]
    assert (b["registered_at"], b["resolution_deadline"]) == (utc(2022, 3, 1, 2), utc(2022, 3, 2, 2))
    assert b["closed_at"] == b["last_event_at"] == utc(2022, 3, 2, 6)
    assert (b["department"], b["town"], b["community"], b["grid"], b["zone"]) == (
        "housing", "Zhongbu", "C2", "G2", "Asia/Shanghai")  # fmt: skip
    assert v["C"]["resolution_deadline"] is None and v["D"]["closed_at"] is None
    assert positions(engine) == {0: 8, 1: 15, 2: 6}  # A+D: 6+2, B+E: 9+6, C: 6 events
    assert overdue_by_department(engine) == {"housing": (1, 2), "transport": (0, 1), "urban": (0, 1)}


def test_local_day_follows_the_items_zone(engine: Engine) -> None:
    ItemProjector(engine).apply_batch(to_messages(ALL["C"]))
    closed_at = next(e for e in ALL["C"] if e.event_type == "ItemClosed").occurred_at
    assert closed_at == utc(2022, 1, 1, 3)  # 22:00 on 2021-12-31 in New York
    keys = zip((*AREA_LEVELS, "category"), ("urban", "Sibaoshan", "C1", "G3", "litter"), strict=True)
    assert set(counters(engine)) == {(lv, k, D(2021, 12, 31)) for lv, k in keys}


def rank_view(rows: list[RankingRow]) -> list[tuple[int, str, Decimal | None, int]]:
    return [(r.rank, r.unit_key, r.on_time_rate, r.denominator) for r in rows]


def test_rankings_by_hand(engine: Engine) -> None:
    ItemProjector(engine).apply_batch(MESSAGES)
    one, zero = Decimal("1.0000"), Decimal("0.0000")
    rows = rank_units(engine, "department", None, None)
    assert rank_view(rows) == [(1, "transport", one, 1), (1, "urban", one, 1), (3, "housing", zero, 1)]
    assert rows[0].denominator_rule == "closed items with a deadline"
    assert (rows[2].closed, rows[2].overdue, rows[2].cancelled, rows[2].on_time) == (1, 1, 1, 0)
    rows = rank_units(engine, "department", None, None, no_deadline="on_time")
    assert rank_view(rows) == [(1, "urban", one, 2), (1, "transport", one, 1), (3, "housing", zero, 1)]
    assert rows[0].numerator == 2 and rows[0].no_deadline == 1 and "without a deadline counted on time" in (
        rows[0].denominator_rule)  # fmt: skip
    assert rank_view(rank_units(engine, "grid", None, None)) == [
        (1, "G1", one, 1), (1, "G4", one, 1), (3, "G2", zero, 1), (4, "G3", None, 0)]  # fmt: skip
    # [2022-03-02, 2022-03-05): housing's late close and cancellation only; transport's 03-05 is excluded
    rows = rank_units(engine, "department", D(2022, 3, 2), D(2022, 3, 5))
    assert [(r.unit_key, r.closed, r.cancelled, r.on_time_rate) for r in rows] == [("housing", 1, 1, zero)]
    urban = next(
        r for r in rank_units(engine, "department", D(2022, 1, 1), None, "on_time") if r.unit_key == "urban"
    )
    assert (urban.rank, urban.denominator, urban.no_deadline) == (1, 1, 0)  # C's close fell on 2021-12-31
    with pytest.raises(ValueError, match="unknown level"):
        rank_units(engine, "county", None, None)


def test_rates_are_quantized_half_up_and_exported(engine: Engine) -> None:
    base = {c: 0 for c in C} | {"level": "department", "day": D(2022, 5, 1)}
    units = {"u1": (3, 2), "u2": (32, 1), "u3": (8, 5)}  # 2/3, 1/32 = 0.03125, 5/8
    with engine.begin() as conn:
        conn.execute(insert(rm.unit_day_counters), [
            base | {"unit_key": u, "closed": n, "closed_with_deadline": n, "closed_on_time": k}
            for u, (n, k) in units.items()])  # fmt: skip
    rows = rank_units(engine, "department", None, None)
    assert rank_view(rows) == [(1, "u1", Decimal("0.6667"), 3), (2, "u3", Decimal("0.6250"), 8),
                               (3, "u2", Decimal("0.0313"), 32)]  # fmt: skip
    assert to_csv(rows).splitlines()[1].startswith("1,department,u1,3,3,2,0,0,0,0.6667,2,3,")
    assert json.loads(to_json(rows))[2]["on_time_rate"] == "0.0313"
    table = format_table(rows)
    assert "0.6667" in table and table.splitlines()[0].split()[:2] == ["rank", "unit"]


def test_every_delivery_order_and_repeat_gives_the_same_tables(engine: Engine) -> None:
    projector = ItemProjector(engine)
    projector.apply_batch(MESSAGES)
    reference, expected_positions = live_checksum(engine), positions(engine)
    projector.apply_batch(MESSAGES)  # everything twice
    assert live_checksum(engine) == reference and positions(engine) == expected_positions
    reset(engine)
    half = len(MESSAGES) // 2
    for batch in (MESSAGES[:half], MESSAGES[half:], MESSAGES[:half], MESSAGES, MESSAGES[3:4]):
        projector.apply_batch(batch)  # repeats arrive after later events of the same item
    assert live_checksum(engine) == reference and positions(engine) == expected_positions
    rng = random.Random(7)
    for _ in range(3):
        reset(engine)
        queues = {k: to_messages(v) for k, v in ALL.items()}
        stream: list[RawMessage] = []
        while any(queues.values()):  # interleave items at random, each item in order
            stream.append(queues[rng.choice([k for k, q in queues.items() if q])].pop(0))
            if rng.random() < 0.3:
                stream.append(rng.choice(stream))  # a redelivery of anything already sent
        cuts = sorted(rng.sample(range(1, len(stream)), 4))
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            result = projector.apply_batch(stream[start:end])
            assert result.dead_lettered == 0
        assert live_checksum(engine) == reference and counters(engine) == EXPECTED_COUNTERS


def test_bad_messages_go_to_dead_letters_and_the_rest_applies(engine: Engine) -> None:
    fresh(engine)
    store(engine, ALL["A"])  # B is not in the store
    a = to_messages(ALL["A"])
    closed = ALL["A"][-1]
    bad = [
        b"{not json",
        b"\xff\xfe",
        json.dumps(event_to_dict(closed) | {"event_type": "ItemTeleported"}).encode(),
        json.dumps(
            event_to_dict(closed) | {"payload": {**event_to_dict(closed)["payload"], "on_time": "yes"}}
        ).encode(),
        encode_event(ALL["B"][1]),  # B's dispatch, but the store does not hold it
    ]
    msgs = a[:3] + [RawMessage(TOPIC, 0, 3 + i, None, raw) for i, raw in enumerate(bad)] + [
        m._replace(offset=m.offset + 5) for m in a[3:]]  # fmt: skip
    result = ItemProjector(engine).apply_batch(msgs)
    assert (result.applied, result.dead_lettered) == (6, 5)
    with engine.connect() as conn:
        dead = conn.execute(
            select(rm.dead_letters.c.source, rm.dead_letters.c.reason, rm.dead_letters.c.raw)
        ).all()
    reasons = {src: reason for src, reason, _ in dead}
    assert all(src.startswith(f"{TOPIC}/0/") for src in reasons) and len(reasons) == 5
    sources = [f"{TOPIC}/0/{3 + i}" for i in range(5)]
    assert (
        "is not valid UTF-8 JSON" in reasons[sources[0]] and "is not valid UTF-8 JSON" in reasons[sources[1]]
    )
    assert reasons[sources[2]] == "event_type: unknown event type 'ItemTeleported'"
    assert reasons[sources[3]].startswith("payload.on_time: must be true or false")
    assert reasons[sources[4]] == "not in the event store (the projection applies only stored events)"
    assert {bytes(raw) for _, _, raw in dead} == set(bad)
    assert views(engine)["A"]["stage"] == "closed" and set(views(engine)) == {"A"}
    assert positions(engine) == {0: msgs[-1].offset + 1}
    again = ItemProjector(engine).apply_batch(msgs)  # a redelivered batch records nothing twice
    assert again.applied == 0 and again.duplicates == 6
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rm.dead_letters)).scalar_one() == 5


def test_rebuild_from_the_store_equals_the_live_tables(engine: Engine) -> None:
    store = EventStore(engine)
    store.create()
    store.append(in_time_order(ALL))
    ItemProjector(engine).apply_batch(MESSAGES)
    live = live_checksum(engine)
    reset(engine)
    result = ItemProjector(engine).rebuild_from_store(store, batch_size=7)
    assert (result.applied, result.dead_lettered) == (29, 0)
    assert live_checksum(engine) == live and counters(engine) == EXPECTED_COUNTERS


def test_checksum_is_the_same_on_sqlite_and_postgresql(pg_url: str, tmp_path: Path) -> None:
    digests = []
    for url in (f"sqlite:///{tmp_path / 'x.db'}", pg_url):
        eng = make_engine(url)
        fresh(eng)
        store(eng, in_time_order(ALL))
        ItemProjector(eng).apply_batch(MESSAGES)
        digests.append(table_checksum(eng, [*rm.READ_MODEL_TABLES, "applied_events", "projection_positions"]))
        eng.dispose()
    assert digests[0] == digests[1]


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 10)
    finally:
        await producer.stop()


async def test_consumer_resumes_from_stored_offsets_on_a_real_broker(broker: str, tmp_path: Path) -> None:
    topic = f"items-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=broker, events_topic=topic, dead_letter_topic=f"{topic}.dlq")
    await topics_ready(settings)
    eng = make_engine(f"sqlite:///{tmp_path / 'kafka.db'}")
    first = in_time_order({k: ALL[k] for k in "ABC"})
    second = in_time_order({k: ALL[k] for k in "DE"})
    store(eng, first)
    await _produce(
        broker, topic, [(e.item_id.encode(), encode_event(e)) for e in first] + [(b"junk", b"{oops")]
    )
    totals = await run_until_caught_up(settings, eng, timeout_s=60)
    # Effects are exact; deliveries are at least once (a rebalance on a loaded machine re-reads a
    # batch that was fetched before its positions were stored: it shows as duplicates).
    assert totals.applied == len(first) and totals.dead_lettered >= 1
    assert sum(positions(eng).values()) == len(first) + 1

    redelivered = first[4]  # a producer retry: an event already applied arrives again, later
    records = [(e.item_id.encode(), encode_event(e)) for e in [*second, redelivered]]
    store(eng, second)
    await _produce(broker, topic, records)
    # A new group: Tansu starts groups at generation 0, so aiokafka's first member never sends
    # LeaveGroup and a restart in the same group waits ~10 s for its session to expire. The new
    # consumer must resume from the SQL positions anyway: offsets are never committed to Kafka.
    consumer = ProjectionConsumer(settings, eng, group_id="duban-projector-restarted")
    stop = asyncio.Event()
    runner = asyncio.create_task(consumer.run(stop))
    try:
        await consumer.wait_caught_up(timeout_s=60)
        assert await consumer.lag() == 0  # every stored event is applied
        assert await consumer.kafka_lag() == {0: 0, 1: 0, 2: 0}
        assert consumer.last_poll_at is not None
    finally:
        stop.set()
        await runner
    # only the new records were read: resumed from the stored offsets, not from the beginning
    # (which would make every one of the first events a duplicate)
    assert consumer.totals.applied == len(second) and 1 <= consumer.totals.duplicates < len(first)
    assert counters(eng) == EXPECTED_COUNTERS
    assert sum(positions(eng).values()) == len(first) + 1 + len(second) + 1
    with eng.connect() as conn:
        dead = conn.execute(select(rm.dead_letters.c.reason, rm.dead_letters.c.raw)).all()
        applied = conn.execute(select(func.count()).select_from(rm.applied_events)).scalar_one()
    assert [(bytes(raw), "is not valid UTF-8 JSON" in reason) for reason, raw in dead] == [(b"{oops", True)]
    assert applied == 29
    eng.dispose()
