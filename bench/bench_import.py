"""Benchmark: the profile-driven import against a bare ``csv.reader`` pass, and its memory.

Files in the Boston layout of ``../shared/data/boston311_2022_sample.csv`` are made by repeating its
rows with fresh case ids (``--rows`` and ten times as many; default 100,000 and 1,000,000). For
each, in a fresh Python process:

- a bare ``csv.reader`` pass over the file (every row read, nothing mapped) — the baseline;
- the import as ``duban import-report`` runs it (``read_outcomes`` with the built-in ``boston311``
  profile: header matched, every field mapped and bounded, times parsed and corrected, duplicate ids
  checked, refusals grouped in ``ImportReport``).

Each is run ``--repeat`` times, alternating, and the fastest run of each counts. Prints rows per
second of each and the ratio import ÷ baseline (goal: at least 0.3), and the peak
resident memory of each process (``resource.getrusage``) at both sizes with the ratio 1M ÷ 100k
(goal: about 1, flat: records stream and the ids seen go to a scratch SQLite file). The machine is
shared and noisy: only ratios within one run mean anything.

Usage: python bench/bench_import.py [--rows 100000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

BOSTON = Path(__file__).resolve().parents[2] / "shared" / "data" / "boston311_2022_sample.csv"

CHILD = r"""
import csv, json, resource, sys, time
from pathlib import Path
path, mode = Path(sys.argv[1]), sys.argv[2]
from duban.importers.profiles import load_profile, read_outcomes  # imported before the clock starts
from duban.importers.report import ImportReport
spec = load_profile("boston311")
started = time.perf_counter()
rows = 0
if mode == "csv":
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for _ in csv.reader(handle):
            rows += 1
    rows -= 1
else:
    report = ImportReport()
    for outcome in read_outcomes(spec, path):
        report.add(outcome)
    rows = report.rows_read
    assert report.items == rows, report.lines()[:5]
elapsed = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "s": elapsed, "peak_mib": peak_kib / 1024}))
"""


def make_file(path: Path, rows: int) -> None:
    """``rows`` Boston rows: the sample's, over and over, each with a fresh CASE_ENQUIRY_ID and, on
    each repetition, its times a minute later (so no time repeats and no cache flatters the import)."""
    with BOSTON.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        sample = list(reader)
    key = header.index("CASE_ENQUIRY_ID")
    times = [header.index(name) for name in ("OPEN_DT", "TARGET_DT", "CLOSED_DT")]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for n in range(rows):
            row = list(sample[n % len(sample)])
            row[key] = f"9{n:011d}"
            later = timedelta(minutes=n // len(sample))
            for column in times:
                if row[column]:
                    row[column] = str(datetime.fromisoformat(row[column]) + later)
            writer.writerow(row)


def measure(path: Path, mode: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Make the files here and keep them.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each, alternating; the best counts.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duban-bench-import-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        peaks = {}
        for rows in (args.rows, args.rows * 10):
            path = folder / f"boston-{rows}.csv"
            if not path.is_file():
                make_file(path, rows)
            runs = [(measure(path, "csv"), measure(path, "import")) for _ in range(args.repeat)]
            bare = min((b for b, _ in runs), key=lambda r: r["s"])  # the best of each: the least disturbed
            imported = min((i for _, i in runs), key=lambda r: r["s"])
            assert bare["rows"] == imported["rows"] == rows
            bare_rate, import_rate = rows / bare["s"], rows / imported["s"]
            peaks[rows] = (bare["peak_mib"], imported["peak_mib"])
            print(f"{rows:>9,} rows ({path.stat().st_size / 2**20:,.0f} MiB)")
            print(f"  csv.reader   {bare_rate:>10,.0f} rows/s   peak {bare['peak_mib']:6.1f} MiB")
            print(f"  import       {import_rate:>10,.0f} rows/s   peak {imported['peak_mib']:6.1f} MiB")
            print(f"  ratio import ÷ csv.reader: {import_rate / bare_rate:.2f} (goal ≥ 0.3)")
        small, large = args.rows, args.rows * 10
        print(f"peak memory {large:,} ÷ {small:,} rows: import {peaks[large][1] / peaks[small][1]:.2f}, "
              f"csv.reader {peaks[large][0] / peaks[small][0]:.2f} (goal: about 1, flat)")  # fmt: skip


if __name__ == "__main__":
    main()
