"""Issue 12, tamper evidence: the log is tampered with in each way an insider could, on SQLite and
PostgreSQL; ``verify_log`` and the standalone verifier (run alone, standard library only) each catch
every one and name the first bad event; an untouched log verifies."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.items import three_items
from helpers.paths import REPO
from helpers.projections import fresh
from sqlalchemy import Engine, delete, func, insert, select, update

from duban.audit.export import export_log
from events.chain import link
from events.log_audit import canonical_bytes, migrate_chains, verify_log
from events.seals import take_seal
from events.sql import make_engine
from events.store import EventStore, stored_events

SCRIPT = REPO / "duban" / "audit" / "standalone_verify.py"
_c = stored_events.c


@pytest.fixture(params=["sqlite", "postgresql"])
def sealed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """P, Q and R (three streams of 17, 4 and 13 events, timers' included) stored and sealed."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    else:
        engine = make_engine(request.getfixturevalue("pg_url"))
        fresh(engine)
    events = three_items()
    EventStore(engine).create()
    for item in ("P", "Q", "R"):  # one append per stream and step, as the recorder appends
        for event in (e for e in events if e.item_id == item):
            EventStore(engine).append([event])
    latest = max(e.recorded_at for e in events)
    take_seal(engine, latest + timedelta(seconds=400))
    yield engine
    engine.dispose()


def row(engine: Engine, item: str, sequence: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(stored_events).where(_c.item_id == item, _c.sequence == sequence)).one()


def change(engine: Engine, item: str, sequence: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(stored_events).where(_c.item_id == item, _c.sequence == sequence).values(**values)
        )


def remove(engine: Engine, item: str, *sequences: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(stored_events).where(_c.item_id == item, _c.sequence.in_(sequences)))


def forge_after(engine: Engine, item: str) -> None:
    """Append to ``item`` an event whose digest and chain the forger computed correctly, dated
    inside the sealed past."""
    with engine.connect() as conn:
        top = conn.execute(select(func.max(_c.sequence)).where(_c.item_id == item)).scalar_one()
    last = row(engine, item, top)
    forged = dict(last._mapping) | {"sequence": top + 1, "event_id": f"forged-{item}", "actor": "insider"}
    forged.pop("position")
    forged["digest"] = hashlib.sha256(canonical_bytes(SimpleNamespace(**forged))).hexdigest()
    forged["chain"] = link(last.chain, forged["digest"])
    with engine.begin() as conn:
        conn.execute(insert(stored_events), [forged])


def swap_sequences(engine: Engine, item: str, a: int, b: int) -> None:
    first, second = row(engine, item, a), row(engine, item, b)
    with engine.begin() as conn:
        conn.execute(update(stored_events).where(_c.position == first.position).values(sequence=b))
        conn.execute(update(stored_events).where(_c.position == second.position).values(sequence=a))


TAMPERING: dict[str, tuple[Callable[[Engine], None], str, str | None]] = {
    # name: (what is done, the kind reported, the first bad event "item#sequence" or None for a seal)
    "a payload byte": (
        lambda e: change(e, "P", 6, payload=row(e, "P", 6).payload.replace("PWD", "PWE")),
        "edited",
        "P#6",
    ),
    "a time": (
        lambda e: change(e, "R", 3, occurred_at=row(e, "R", 3).occurred_at + timedelta(seconds=1)),
        "edited",
        "R#3",
    ),
    "a row deleted": (lambda e: remove(e, "P", 6), "gap", "P#7"),
    "a forged row with a plausible hash": (lambda e: forge_after(e, "R"), "seal", None),
    "two rows swapped": (lambda e: swap_sequences(e, "P", 2, 3), "edited", "P#2"),
    "a stream's tail truncated": (lambda e: remove(e, "P", 16, 17), "seal", None),
    "a whole stream deleted": (lambda e: remove(e, "Q", 1, 2, 3, 4), "seal", None),
    "a chain rewritten": (lambda e: change(e, "Q", 2, chain="0" * 64), "chain", "Q#2"),
}


def standalone(engine: Engine, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    export = tmp_path / "log.jsonl"
    with export.open("w", encoding="utf-8") as out:
        export_log(engine, out)
    # -I: isolated mode, no site-packages and no current directory: only the standard library.
    return subprocess.run([sys.executable, "-I", str(SCRIPT), str(export)], capture_output=True, text=True)


def test_an_untouched_log_verifies(sealed: Engine, tmp_path: Path) -> None:
    report = verify_log(sealed)
    assert report.ok and (report.events, report.streams, report.seals) == (34, 3, 1)
    done = standalone(sealed, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("34 events, 1 seals: verified")


@pytest.mark.parametrize("how", list(TAMPERING))
def test_each_tampering_is_caught_and_named(sealed: Engine, tmp_path: Path, how: str) -> None:
    tamper, kind, first = TAMPERING[how]
    tamper(sealed)
    report = verify_log(sealed)
    assert not report.ok
    problem = report.problems[0]
    assert problem.kind == kind, report.problems
    if first is not None:
        assert f"{problem.item_id}#{problem.sequence}" == first
    done = standalone(sealed, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    if first is not None:
        item, sequence = first.split("#")
        assert f"({item} #{sequence}," in done.stdout.splitlines()[0]
    else:
        assert done.stdout.startswith("seal ")


def test_events_stored_before_chains_are_migrated_in_stream_order(sealed: Engine) -> None:
    with sealed.begin() as conn:
        conn.execute(update(stored_events).values(chain=None))
    report = verify_log(sealed)
    assert [p.kind for p in report.problems][:3] == ["unchained"] * 3
    assert migrate_chains(sealed) == 34 and migrate_chains(sealed) == 0
    assert verify_log(sealed).ok  # the chains rebuilt are the ones the seal was taken over


def test_concurrent_appends_to_many_streams_chain_each_stream(sealed: Engine) -> None:
    """Streams appended from several threads at once (as concurrent recording activities do), each
    event appended twice (a retried recording): every stream verifies and each event is stored once."""
    from concurrent.futures import ThreadPoolExecutor

    from helpers.items import item

    now = datetime.now(UTC)  # recorded after the seal, as new events are
    streams = [[replace(e, recorded_at=now) for e in item(f"C{i}")] for i in range(12)]
    store = EventStore(sealed)

    def record(events: list[Any]) -> None:
        for event in events:
            store.append([event])
            store.append([event])

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(record, streams))
    report = verify_log(sealed)
    assert report.ok, report.problems
    assert report.events == 34 + sum(len(s) for s in streams)
    assert json.dumps(sorted(p.kind for p in report.problems)) == "[]"
