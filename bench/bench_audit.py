"""Benchmark: the auditors' checks against the plain work they wrap, on the same store in one run.

A SQLite store of about ``--events`` events (default 1,000,000) is made from items through the pure
domain core (each registered, dispatched, accepted, rectified, verified and closed, a few late, over
four months of 2026 in Asia/Shanghai), appended as the recorder appends (chained), projected, and
its second month closed (which seals the log). Then:

- ``verify-log`` (every digest and chain link recomputed, the seals checked) against a plain read of
  the same rows (goal: at least 0.5 of its events per second);
- ``audit period`` (the read models rebuilt from the log in a scratch database, every value
  compared with the snapshot) against ``rebuild-read-models`` on the same events (goal: at most 1.5×
  its time).

Only ratios within one run mean anything: the machine is shared and noisy.

Usage: python bench/bench_audit.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers.notices import at, done, item

from duban import services
from duban.audit.period import audit_period
from events.log_audit import verify_log
from events.sql import make_engine
from events.store import EventStore, stored_events
from projections.frozen_periods import freeze_period
from projections.projector import ItemProjector
from projections.scoring import load_scorebook


def fill(store: EventStore, wanted: int) -> int:
    stored, n = 0, 0
    while stored < wanted:
        day = 2 + n % 100  # spread over September to December 2026
        reported = at(9, 1, 9) + timedelta(days=day, minutes=n % 400)
        late = n % 7 == 0
        events = item(f"I{n:07d}", f"D{n % 40:02d}", f"T{n % 90:02d}", reported,
                      *done(reported + timedelta(hours=30 if late else 2)))  # fmt: skip
        for start in range(0, len(events), 3):  # steps of a few events, as the workflow records
            store.append(events[start : start + 3])
        stored += len(events)
        n += 1
    return stored


def timed(label: str, work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    took = time.perf_counter() - started
    print(f"  {label:<44} {took:8.1f} s")
    return took


def main(wanted: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    url = f"sqlite:///{folder / 'audit.db'}"
    engine = make_engine(url)
    store = EventStore(engine)
    store.create()
    started = time.perf_counter()
    count = fill(store, wanted)
    print(f"{count:,} events stored in {time.perf_counter() - started:.0f} s")
    ItemProjector(engine).rebuild_from_store(store)
    freeze_period(engine, "2026-10", load_scorebook(), datetime(2026, 11, 2, tzinfo=UTC))

    def plain_read() -> None:
        with engine.connect() as conn:
            for _ in conn.execution_options(yield_per=5000).execute(
                select(stored_events).order_by(stored_events.c.item_id, stored_events.c.sequence)
            ):
                pass

    def verify() -> None:
        assert verify_log(engine).ok

    read_s = timed("plain read of the rows, in stream order", plain_read)
    verify_s = timed("duban audit verify-log", verify)
    print(
        f"  verify-log: {count / verify_s:,.0f} events/s against {count / read_s:,.0f}: "
        f"ratio {read_s / verify_s:.2f} (goal ≥ 0.5)"
    )
    rebuild_s = timed("duban rebuild-read-models", lambda: services.rebuild_read_models(url))

    def audit() -> None:
        assert audit_period(url, "2026-10").differences == []

    audit_s = timed("duban audit period 2026-10", audit)
    print(f"  audit period / rebuild: {audit_s / rebuild_s:.2f}× (goal ≤ 1.5×)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    main(parser.parse_args().events)
