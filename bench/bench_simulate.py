"""Benchmark: the main job's items per second against a trivial workflow, same server, same run.

Baseline: a trivial workflow that starts, waits for one signal and completes, run for the same
number of items on the same time-skipping test server, with the same worker settings and client
concurrency. The main job replays the first N Boston cases (all of its stages: start, timers,
event recording to SQLite and Kafka, projection). Prints both rates and their ratio; the machine
is shared and noisy, so only the ratio within one run means anything.

With ``--against REF`` (a git commit, e.g. the one before a refactoring) the same benchmark runs
first on that commit's code (a temporary worktree, in a subprocess on this environment), then on this
one, and prints both ratios and their quotient: the change's cost, measured in one run.

Usage: python bench/bench_simulate.py [--items 1000] [--data ../shared/data/boston311_2022_sample.csv]
       [--against REF]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():  # this script defines a workflow: the sandbox imports it
    from duban.config import load_settings
    from duban.jobs.simulate import Replay, SimulationOptions, ensure_kafka, quiet_runtime
    from duban.processes.worker import workflow_runner
    from duban.stack.binaries import find_binary
    from workflows.payload_converter import DATA_CONVERTER


@workflow.defn
class TrivialWorkflow:
    """Start, wait for one signal, complete."""

    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)

    @workflow.signal
    def finish(self) -> None:
        self._done = True


async def trivial_rate(client: Client, items: int, concurrency: int) -> float:
    """Items per second of start → signal → complete for ``items`` trivial workflows."""
    queue = "bench-trivial"
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            handle = await client.start_workflow(TrivialWorkflow.run, id=f"trivial-{i}", task_queue=queue)
            await handle.signal(TrivialWorkflow.finish)
            await handle.result()

    async with Worker(
        client,
        task_queue=queue,
        workflows=[TrivialWorkflow],
        workflow_runner=workflow_runner(),
        max_cached_workflows=items + 100,
    ):
        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(items)))
        return items / (time.monotonic() - started)


async def main(items: int, data: Path) -> float:
    settings = load_settings()
    await ensure_kafka(settings)
    binary = find_binary("temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binary), runtime=quiet_runtime(), data_converter=DATA_CONVERTER
    ) as env:
        with env.auto_time_skipping_disabled():  # as in the main job
            baseline = await trivial_rate(env.client, items, concurrency=64)
        with tempfile.TemporaryDirectory() as tmp:
            options = SimulationOptions(
                "boston311", data, limit=items, progress=False, database_url=f"sqlite:///{tmp}/bench.db"
            )
            started = time.monotonic()
            summary = await Replay(replace(settings, data_dir=Path(tmp)), options).run(env)
            main_rate = summary.items / (time.monotonic() - started)
        gc.collect()
    print(f"items                      {items}")
    print(f"events recorded            {summary.events}")
    print(f"trivial workflow (items/s) {baseline:10.1f}")
    print(f"main job (items/s)         {main_rate:10.1f}")
    print(f"ratio main/trivial         {main_rate / baseline:10.3f}")
    return main_rate / baseline


def ratio_at(ref: str, items: int, data: Path) -> float:
    """The main/trivial ratio of this benchmark on commit ``ref``'s code (a temporary worktree)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), ref], check=True)
        try:
            # the same embedded stack as this tree's run (the worktree's own would be left running)
            env = os.environ | {
                "PYTHONPATH": str(tree),
                "DUBAN_DATA_DIR": str(load_settings().data_dir.resolve()),
            }
            args = [
                sys.executable,
                "bench/bench_simulate.py",
                "--items",
                str(items),
                "--data",
                str(data.resolve()),
            ]
            done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, check=True)
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"--- at {ref} ---\n{done.stdout}", end="")
    return float(done.stdout.rsplit("ratio main/trivial", 1)[1].split()[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/boston311_2022_sample.csv"))
    parser.add_argument("--against", help="a git commit to measure first, for the ratio of ratios")
    args = parser.parse_args()
    before = ratio_at(args.against, args.items, args.data) if args.against else None
    if before is not None:
        print("--- this tree ---")
    now = asyncio.run(main(args.items, args.data))
    if before is not None:
        print(f"ratio now / ratio at {args.against}  {now / before:10.3f}  (above 1: faster now)")
