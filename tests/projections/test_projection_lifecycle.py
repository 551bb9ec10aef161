"""Lifecycle events (return, extension, suspension, grid call, merge) reach the item view, none is
dead-lettered, and replaying them in another order or twice gives the same tables."""

from __future__ import annotations

import random
from pathlib import Path

from helpers.items import cmd, cst, litter, run
from helpers.projections import store
from sqlalchemy import select

from events.codec import encode_event
from events.envelope import EventEnvelope
from events.sql import make_engine
from projections import read_models as rm
from projections.projector import ItemProjector, RawMessage
from projections.read_models import table_checksum
from workflows import item_rules as rules


def lifecycle_events() -> list[EventEnvelope]:
    state, events = rules.register(litter(cst(11, 2, 9, 0)))
    for c in (
        cmd("dispatch", cst(11, 2, 9, 0), unit="U1", department="UM"),
        cmd("return", cst(11, 2, 9, 10)),
        cmd("dispatch", cst(11, 2, 9, 20), unit="U2", department="Greening"),
        cmd("accept", cst(11, 2, 9, 25), unit="U2"),
        cmd("grid_call", cst(11, 2, 9, 30), actor="grid:wang", departments=["PWD"]),
        cmd("request_extension", cst(11, 2, 9, 40), unit="U2", new_deadline=cst(11, 4, 17, 30)),
        cmd("approve_extension", cst(11, 2, 9, 45)),
        cmd("suspend", cst(11, 2, 9, 50)),
        cmd("resume", cst(11, 3, 9, 0)),
        cmd("merge", cst(11, 3, 9, 30), into_item_id="L-0"),
    ):
        events += run(state, c)
    return events


def messages(events: list[EventEnvelope]) -> list[RawMessage]:
    """Records in delivery order: offsets follow the list (a repeat is a new record)."""
    return [
        RawMessage("duban.item-events", 0, i, e.item_id.encode(), encode_event(e))
        for i, e in enumerate(events)
    ]


def test_lifecycle_events_project_into_the_item_view(tmp_path: Path) -> None:
    events = lifecycle_events()
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    store(engine, events)
    result = ItemProjector(engine).apply_batch(messages(events))
    assert (result.applied, result.dead_lettered) == (len(events), 0)
    with engine.connect() as conn:
        [view] = conn.execute(select(rm.item_view)).mappings()
    assert (view["stage"], view["department"], view["unit"]) == ("merged", "Greening", "U2")
    # extended to Wed 4 Nov 17:30: a budget of 21 working hours from Mon 09:00 (7 h a day); suspended
    # at Mon 09:50 with 20 h 10 min left; resumed Tue 09:00: Tue 7 h, Wed 7 h, then Thu 09:00–12:00
    # and 13:30–16:40
    assert view["resolution_deadline"] == cst(11, 5, 16, 40)
    assert view["last_sequence"] == len(events)


def test_repeats_arriving_after_later_events_change_nothing(tmp_path: Path) -> None:
    events = lifecycle_events()
    in_order = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    store(in_order, events)
    ItemProjector(in_order).apply_batch(messages(events))
    delivered = list(events)
    rng = random.Random(7)
    for event in events[:8]:  # each repeat lands somewhere after its original
        delivered.insert(rng.randint(delivered.index(event) + 1, len(delivered)), event)
    assert len(delivered) == len(events) + 8
    other = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    store(other, events)
    for m in messages(delivered):
        ItemProjector(other).apply_batch([m])
    tables = ("item_view", "unit_day_counters")
    assert table_checksum(other, tables) == table_checksum(in_order, tables)
