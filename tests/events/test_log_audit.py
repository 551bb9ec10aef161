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
from events.chain_migration import migrate_chains
from events.log_audit import canonical_bytes, verify_log
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


# --- found by a tester trying to break ``duban audit`` ----------------------------------------------


def audit(engine: Engine, *args: str) -> Any:
    """``duban audit <args> --database-url <engine's database>`` through the command line."""
    from typer.testing import CliRunner

    from duban.cli import app

    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["audit", *args, "--database-url", url])


def dump(engine: Engine) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The database's tables and every stored row, as they are."""
    from sqlalchemy import inspect

    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(stored_events).order_by(_c.position))]
    return sorted(inspect(engine).get_table_names()), rows


def test_verify_log_only_reads_and_reports_a_removed_digest(sealed: Engine) -> None:
    """verify-log used to fill the NULL digest (EventStore.create), washing out the tampering."""
    change(sealed, "P", 6, digest=None)
    before = dump(sealed)
    for _ in range(2):  # the second run finds the same: nothing was repaired in between
        done = audit(sealed, "verify-log")
        assert done.exit_code == 1, done.output
        assert done.stdout.splitlines()[0].startswith("edited    P #6 (store position 6)"), done.output
        assert dump(sealed) == before
    assert row(sealed, "P", 6).digest is None


def test_verify_log_creates_no_table(sealed: Engine) -> None:
    from events.seals import audit_seals

    audit_seals.drop(sealed)
    before = dump(sealed)
    assert "audit_seals" not in before[0]
    done = audit(sealed, "verify-log")
    assert done.exit_code == 0 and done.stdout.endswith("34 events in 3 streams, 0 seals: verified\n")
    assert dump(sealed) == before


REMOVED_CHAINS = {  # name: (the sequences of P whose chain (and digest) are set NULL, the first named)
    "one chain in the middle": ((6,), False, 6),
    "a chain and its digest": ((6,), True, 6),
    "the first chains of a chained stream": ((1, 2, 3), False, 1),
}


@pytest.mark.parametrize("how", list(REMOVED_CHAINS))
def test_a_chain_removed_from_a_chained_stream_is_tampering_and_not_migrated(
    sealed: Engine, tmp_path: Path, how: str
) -> None:
    sequences, digest_too, first = REMOVED_CHAINS[how]
    for sequence in sequences:
        change(sealed, "P", sequence, chain=None, **({"digest": None} if digest_too else {}))
    report = verify_log(sealed)
    problem = report.problems[0]
    assert (problem.kind, problem.item_id, problem.sequence) == ("chain", "P", first), report.problems
    assert "removed" in problem.detail
    assert [p.kind for p in report.problems] == ["chain"]  # the seal holds the heads, all chained
    before = dump(sealed)
    done = audit(sealed, "chain-migrate")
    assert done.exit_code == 2, done.output
    assert "refuses to re-chain 1 stream(s)" in done.stderr and "P (" in done.stderr, done.stderr
    assert dump(sealed) == before  # nothing filled, nothing chained
    assert not verify_log(sealed).ok


def test_chain_migrate_still_chains_a_store_from_before_chains(sealed: Engine) -> None:
    with sealed.begin() as conn:
        conn.execute(update(stored_events).where(_c.item_id.in_(["P", "R"])).values(chain=None))
    kinds = [(p.kind, p.item_id, p.sequence) for p in verify_log(sealed).problems]
    assert kinds == [("unchained", "P", 1), ("unchained", "R", 1), ("seal", "", 0)]  # heads unchained
    done = audit(sealed, "chain-migrate")
    assert done.exit_code == 0 and done.stdout == "30 events chained\n", done.output  # P 17 + R 13
    assert verify_log(sealed).ok


def test_a_failed_export_leaves_no_file(sealed: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "log.jsonl"
    q2 = row(sealed, "Q", 2)
    change(sealed, "Q", 2, payload='{"broken": ')
    done = audit(sealed, "export", "--output", str(target))
    assert done.exit_code == 2, done.output
    assert done.stderr.startswith(f"error: export to {target} failed, nothing written: event {q2.event_id} ")
    assert f"(Q #2, store position {q2.position}): its payload is not JSON" in done.stderr
    assert list(folder.iterdir()) == []  # neither the file nor a temporary one
    change(sealed, "Q", 2, payload=q2.payload)
    done = audit(sealed, "export", "--output", str(target))
    assert done.exit_code == 0 and done.stdout == f"{target}: 34 events, 1 seals\n", done.output
    assert [p.name for p in folder.iterdir()] == ["log.jsonl"]
    checked = subprocess.run([sys.executable, "-I", str(SCRIPT), str(target)], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.endswith("34 events, 1 seals: verified\n")


def test_a_long_list_of_problems_says_how_many_more_and_keeps_the_seals(sealed: Engine) -> None:
    from helpers.items import item

    store = EventStore(sealed)
    for i in range(103):  # 103 one-event streams, their chains rewritten
        store.append(item(f"S{i:03d}")[:1])
    with sealed.begin() as conn:
        conn.execute(update(stored_events).where(_c.item_id.like("S%")).values(chain="0" * 64))
    remove(sealed, "P", 16, 17)  # and the seal broken
    report = verify_log(sealed, limit=100)
    assert [p.kind for p in report.problems] == ["chain"] * 100 + ["seal"]
    assert (report.more, report.total, report.ok) == (3, 104, False)
    done = audit(sealed, "verify-log")
    assert done.exit_code == 1
    lines = done.stdout.splitlines()
    assert lines[100].startswith("seal      seal: seal 1 ")
    assert lines[101].startswith("… and 3 more event problem(s) not listed")
    assert lines[102] == "135 events in 106 streams, 1 seals: 104 problem(s)"  # 32 + 103 events


def test_a_time_that_does_not_read_is_named(sealed: Engine, tmp_path: Path) -> None:
    """SQLite keeps any text in a time column (PostgreSQL's timestamptz refuses it)."""
    from sqlalchemy import text

    if sealed.dialect.name != "sqlite":
        pytest.skip("only SQLite can store a time that is not a time")
    r3 = row(sealed, "R", 3)
    with sealed.begin() as conn:
        conn.execute(
            text("UPDATE event_store SET occurred_at = 'yesterday-ish' WHERE position = :p"),
            {"p": r3.position},
        )
    report = verify_log(sealed)
    assert [(p.kind, p.item_id, p.sequence, p.position) for p in report.problems][:1] == [
        ("unreadable", "R", 3, r3.position)
    ]
    assert report.problems[0].detail == "its occurred_at 'yesterday-ish' is not a time"
    done = audit(sealed, "verify-log")
    assert done.exit_code == 1 and f"unreadable R #3 (store position {r3.position})" in done.stdout
    target = tmp_path / "log.jsonl"
    done = audit(sealed, "export", "--output", str(target))
    assert done.exit_code == 2 and not target.exists()
    assert f"event {r3.event_id} (R #3, store position {r3.position}): its occurred_at" in done.stderr


def test_the_seal_heads_stay_one_per_stream_when_an_event_is_moved(sealed: Engine, tmp_path: Path) -> None:
    """P#4 moved into Q, whose top sequence is 4 too: Q has two rows at its head's sequence; the
    heads are still one per stream and each event counts once."""
    from events.seals import heads, read_seals

    change(sealed, "P", 4, item_id="Q")
    [seal] = read_seals(sealed)
    with sealed.connect() as conn:
        rows = conn.execute(select(_c.item_id, _c.sequence, _c.position, _c.chain, _c.recorded_at)).all()
        found, total = heads(conn, seal.cutoff)
    sealed_rows = [r for r in rows if r.recorded_at <= seal.cutoff]
    expected: dict[str, tuple[str, int, str]] = {}
    for r in sorted(sealed_rows, key=lambda r: (r.item_id, -r.sequence, r.position)):
        expected.setdefault(r.item_id, (r.item_id, r.sequence, r.chain))
    assert sorted(found) == sorted(expected.values()) and [h[0] for h in sorted(found)] == ["P", "Q", "R"]
    assert total == len(sealed_rows) == 34
    report = verify_log(sealed)
    assert [(p.kind, p.item_id, p.sequence, p.position) for p in report.problems[:2]] == [
        ("edited", "Q", 4, 4),  # the moved row sorts first at Q's sequence 4 (store position 4)
        ("gap", "P", 5, 5),
    ]
    assert [p.kind for p in report.problems[2:]] == ["seal"]
    assert "it covered 3 streams and 34 events, the log now has 3 and 34 up to" in report.problems[2].detail
    done = standalone(sealed, tmp_path)
    assert done.returncode == 1 and "(3 streams and 34 events sealed; 3 and 34 now)" in done.stdout


def test_the_standalone_verifier_names_a_malformed_record_and_exits_2(sealed: Engine, tmp_path: Path) -> None:
    export = tmp_path / "log.jsonl"
    with export.open("w", encoding="utf-8") as out:
        export_log(sealed, out)
    lines = export.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 35

    def broken(number: int, record: Any) -> str:
        bad = list(lines)
        bad[number - 1] = record if isinstance(record, str) else json.dumps(record)
        path = tmp_path / f"bad-{number}.jsonl"
        path.write_text("\n".join(bad) + "\n", encoding="utf-8")
        done = subprocess.run([sys.executable, "-I", str(SCRIPT), str(path)], capture_output=True, text=True)
        assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr.strip().removeprefix(f"{path}: ")

    event = json.loads(lines[6])
    seal = json.loads(lines[34])
    assert broken(7, '{"kind": "event", "item_id": ').startswith("line 7: not JSON (")
    assert broken(3, [1, 2]) == "line 3: not a JSON object"
    assert broken(5, {**event, "kind": "evnt"}) == "line 5: its kind 'evnt' is neither 'event' nor 'seal'"
    no_sequence = {k: v for k, v in event.items() if k != "sequence"}
    assert broken(7, no_sequence) == "line 7: the event has no 'sequence'"
    assert broken(7, {**event, "sequence": "7"}) == "line 7: the event's 'sequence' is '7', not a integer"
    assert broken(7, {**event, "payload": "{}"}) == "line 7: the event's 'payload' is '{}', not a JSON object"
    assert (
        broken(7, {**event, "occurred_at": "soon"})
        == "line 7: the event's 'occurred_at' is 'soon', not an ISO-8601 time with its offset"
    )
    assert broken(35, {**seal, "root": None}) == "line 35: the seal's 'root' is None, not a text"
