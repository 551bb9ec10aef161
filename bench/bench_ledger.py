"""Benchmark: ``duban ledger`` streams — its memory does not grow with the rows it writes.

Two SQLite databases are synthesised: N and 10 × N items in ``item_view`` (50 departments, 200 towns,
two zones, reported over 2025; 80% with a deadline; 60% closed, 5% cancelled, 5% merged, the rest
open), each closed, cancelled or merged item with its terminal event in ``event_store`` (which the
ledger joins for who closed it out, when, and why). Then ``duban ledger --period 2025`` (the command
function itself) writes each as CSV and as XLSX, each export in a fresh Python process that reports
how much its resident set grew during the export (peak RSS, ``resource.getrusage``, minus the RSS
after the imports: this sees SQLite's and lxml's C memory too) and, for CSV, the peak of Python
allocations (tracemalloc; ``--trace-xlsx`` traces XLSX too, about three times slower). The baseline
holds the rows in a list before writing the CSV, as a non-streaming export would: its memory grows
with the rows, which shows the measure can see growth.

Prints, per format, the figures at N and at 10 × N and their ratio (streaming: about 1; the
baseline: about 10). ``--database-url URL`` also exports an existing database, such as the Boston
sample's ``sqlite:///.duban/simulate-boston311.db``. The machine is shared and noisy: only ratios
within one run mean anything.

Last, the ledger of the Boston sample (``../shared/data/boston311_2022_sample.csv``, 4,995 cases)
is exported: its read models are built as ``duban simulate`` plans the cases, stepped through the
pure domain core instead of Temporal, stored and projected.

Usage: python bench/bench_ledger.py [--items 20000] [--trace-xlsx] [--boston CSV] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from events.sql import make_engine
from events.store import EventStore, stored_events
from projections import read_models as rm

ZONES = ("Asia/Shanghai", "America/New_York")
BOSTON = Path(__file__).resolve().parents[2] / "shared" / "data" / "boston311_2022_sample.csv"
CHUNK = 20_000


def synthetic_views(n: int, seed: int = 11) -> Any:
    """``(item_view row, terminal event row or None)`` per item, generated lazily."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    for i in range(n):
        item_id = f"I{i:07d}"
        at = start + timedelta(seconds=rng.randrange(360 * 86_400))
        deadline = at + timedelta(hours=rng.choice((4, 24, 72, 168))) if rng.random() < 0.8 else None
        fate = rng.random()
        stage = (
            "closed" if fate < 0.6 else "cancelled" if fate < 0.65 else "merged" if fate < 0.7
            else rng.choice(("registered", "dispatched", "accepted", "rectified", "verified"))
        )  # fmt: skip
        ended = (
            at + timedelta(hours=rng.uniform(1, 200)) if stage in ("closed", "cancelled", "merged") else None
        )
        on_time = None if stage != "closed" or deadline is None else ended <= deadline  # type: ignore[operator]
        dept, town = f"D{rng.randrange(50):02d}", rng.randrange(200)
        view = {
            "item_id": item_id, "category": rng.choice(("litter", "pavement", "parking", "greenery")),
            "department": dept, "unit": f"{dept}-U{rng.randrange(5)}", "town": f"T{town:03d}",
            "community": f"C{town * 10 + rng.randrange(10):04d}", "grid": f"G{rng.randrange(5000):04d}",
            "zone": ZONES[i % 2], "order_id": "", "district": f"P{town % 9}", "calendar": "", "stage": stage,
            "registered_at": at, "resolution_deadline": deadline,
            "closed_at": ended if stage == "closed" else None, "on_time": on_time,
            "overdue": on_time is False, "escalation_level": int(on_time is False), "warned": False,
            "last_sequence": 6, "last_event_at": ended or at,
        }  # fmt: skip
        event = None
        if ended is not None:
            kind = {"closed": "ItemClosed", "cancelled": "ItemCancelled", "merged": "ItemMerged"}[stage]
            payload = {"reason": "duplicate of an earlier report", "into_item_id": "I0000000"}
            event = {
                "event_id": f"{item_id}-6", "event_type": kind, "schema_version": 1, "item_id": item_id,
                "sequence": 6, "occurred_at": ended, "recorded_at": ended, "actor": "office:zhang",
                "payload": json.dumps(payload if stage != "closed" else {}), "correlation_id": item_id,
                "causation_id": "", "digest": "0" * 64,
            }  # fmt: skip
        yield view, event


def build(path: Path, n: int) -> str:
    """A SQLite database of ``n`` synthetic items; its URL."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    rm.create_tables(engine)
    EventStore(engine).create()
    views: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(rm.item_view), views)
            if events:
                conn.execute(insert(stored_events), events)
        views.clear()
        events.clear()

    for view, event in synthetic_views(n):
        views.append(view)
        if event is not None:
            events.append(event)
        if len(views) == CHUNK:
            flush()
    if views:
        flush()
    engine.dispose()
    return url


def build_boston(path: Path, sample: Path) -> str:
    """The read models of the Boston sample in a SQLite database; its URL. Each case is planned as
    ``duban simulate`` plans it (``duban.jobs.replay_plan``) and stepped through the pure domain core
    (``workflows.item_step``, the workflow's own step) instead of Temporal; the events are stored,
    then projected (``rebuild_from_store``)."""
    from duban.importers.profiles import load_cases
    from duban.jobs.replay_plan import plan_case
    from projections.projector import ItemProjector
    from workflows import item_rules
    from workflows.item_step import handle_command

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    rm.create_tables(engine)
    store = EventStore(engine)
    store.create()
    for case in load_cases("boston311", sample).cases:
        plan = plan_case(case, "boston311")
        state, events = item_rules.register(plan.registration)
        for cmd in plan.initial_commands:
            events += handle_command(state, cmd, case.reported_at, 300).events
        for cmd in plan.later:
            events += handle_command(state, cmd, plan.later_at or case.reported_at, 300).events
        store.append(events)
    done = ItemProjector(engine).rebuild_from_store(store)
    assert done.dead_lettered == 0, "the sample's events do not all project"
    engine.dispose()
    return url


def _rss_now() -> int:
    """This process's resident set size now, in bytes (Linux ``/proc``; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


def measure(url: str, fmt: str, mode: str, out: str, period: str, trace: str) -> None:
    """In a fresh process: export the ledger, print one JSON line (seconds, peaks in bytes)."""
    import openpyxl  # noqa: F401 - imported before measuring: imports are not the export
    import typer

    from duban.cli.ledger import ledger
    from duban.ledger import write_csv
    from projections.ledger import LedgerFilter, ledger_rows

    app = typer.Typer()
    app.command()(ledger)
    before = _rss_now()
    if trace == "1":
        tracemalloc.start()
    started = time.perf_counter()
    if mode == "stream":  # the command, as `duban ledger` runs it
        args = ["--database-url", url, "--format", fmt, "--output", out]
        app([*args, "--period", period] if period else args, standalone_mode=False)
    else:  # the baseline: every row in a list first
        engine = make_engine(url)
        rows = list(ledger_rows(engine, LedgerFilter(period=period or None)))
        print(f"ledger: {write_csv(iter(rows), Path(out), 'zh-CN')} items written to {out}")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace == "1" else None
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    print(json.dumps({"seconds": seconds, "peak": peak, "rss_growth": grown}))


def child(url: str, fmt: str, mode: str, folder: Path, trace: bool, period: str = "2025") -> dict[str, Any]:
    """Run ``measure`` in a fresh Python process; its results, with the rows written."""
    out = folder / f"ledger-{mode}.{fmt}"
    done = subprocess.run(
        [sys.executable, __file__, "--measure", url, fmt, mode, str(out), period, "1" if trace else "0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    written = re.search(r"ledger: (\d+) items written", done.stdout)
    result["rows"] = int(written[1]) if written else -1
    return result


def mib(n: float | None) -> str:
    return "     n/a" if n is None else f"{n / 2**20:8.1f} MiB"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / max(b, 1):.2f}"


def report(label: str, n: int, small: dict[str, Any], large: dict[str, Any]) -> None:
    assert (small["rows"], large["rows"]) == (n, 10 * n), f"{label}: rows missing"
    print(f"  {label}")
    for count, r in ((n, small), (10 * n, large)):
        print(
            f"    {count:>9,} rows: peak Python {mib(r['peak'])}, RSS growth {mib(r['rss_growth'])}, "
            f"{r['seconds']:6.1f} s ({count / r['seconds']:,.0f} rows/s)"
        )
    print(
        f"    ratio 10×N / N: peak Python {ratio(large['peak'], small['peak'])}, "
        f"RSS growth {ratio(large['rss_growth'], small['rss_growth'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000, help="N (the large database has 10 × N)")
    parser.add_argument("--database-url", help="also measure the ledger of this database (e.g. Boston's)")
    parser.add_argument(
        "--trace-xlsx", action="store_true", help="also trace Python allocations of XLSX (about 3× slower)"
    )
    parser.add_argument("--boston", type=Path, default=BOSTON, help="the Boston sample (skipped if absent)")
    parser.add_argument("--measure", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    n = args.items
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        urls = {k: build(folder / f"ledger-{k}.db", k) for k in (n, 10 * n)}
        print(f"Synthesised {n:,} and {10 * n:,} items in {time.perf_counter() - started:.1f} s")
        for fmt, trace in (("csv", True), ("xlsx", args.trace_xlsx)):
            small, large = (child(urls[k], fmt, "stream", folder, trace) for k in (n, 10 * n))
            report(f"duban ledger --period 2025 --format {fmt} (streaming)", n, small, large)
        small, large = (child(urls[k], "csv", "list", folder, True) for k in (n, 10 * n))
        report("baseline: the same rows held in a list, then written as CSV", n, small, large)
        if args.boston.is_file():
            started = time.perf_counter()
            boston = build_boston(folder / "boston.db", args.boston)
            print(f"The Boston sample's read models built in {time.perf_counter() - started:.1f} s")
            for fmt in ("csv", "xlsx"):
                r = child(boston, fmt, "stream", folder, fmt == "csv", period="")
                print(
                    f"  duban ledger --format {fmt} on the Boston sample: {r['rows']:,} rows, peak Python "
                    f"{mib(r['peak'])}, RSS growth {mib(r['rss_growth'])}, {r['seconds']:.1f} s"
                )
        if args.database_url:
            r = child(args.database_url, "xlsx", "stream", folder, False, period="")
            print(
                f"  {args.database_url}: {r['rows']:,} rows as XLSX, RSS growth {mib(r['rss_growth'])}, "
                f"{r['seconds']:.1f} s"
            )


if __name__ == "__main__":
    main()
