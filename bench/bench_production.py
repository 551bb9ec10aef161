"""Benchmark: commands per second through the production path against a trivial workflow's rate.

Both on the same Temporal dev server (``temporal server start-dev``, started here), in the same run:

- Baseline: a trivial workflow that starts, waits for one signal and completes (``bench_simulate``'s
  ``TrivialWorkflow``), ``--items`` of them, ``--concurrency`` at a time, on one in-process worker.
- Production path: two ``duban worker`` processes (started here, as a city runs them, with the
  embedded broker and a SQLite event store) and ``--items`` supervision items, ``--concurrency`` at
  a time, each registered and taken through dispatch, accept, submit, verify and close by workflow
  updates, as the gateway applies commands (each answered once its events are stored and published).
  A command here is the registration or one of the five updates: six per item.

Prints both rates (trivial workflows per second, commands per second) and their ratio. The machine is
shared and noisy: only the ratio within one run means anything.

Usage: python bench/bench_production.py [--items 300] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_simulate import trivial_rate
from chaos import Topology
from temporalio.client import Client

from workflows.item_client import apply_command, item_workflow_id, start_item
from workflows.item_model import ItemCommand, Registration
from workflows.item_workflow import ItemWorkflowInput

TEAM = "parks-team-3"
STEPS = (
    ("dispatch", "dispatcher:zhao", "dispatcher", {"department": "parks", "unit": TEAM}),
    ("accept", f"unit:{TEAM}", "handling_unit", {"unit": TEAM}),
    ("submit_rectification", f"unit:{TEAM}", "handling_unit", {"unit": TEAM, "evidence": ["photo:1"]}),
    ("verify", "inspector:chen", "inspector", {"unit": "inspection-1", "passed": True}),
    ("close", "office:li", "office", {}),
)
COMMANDS_PER_ITEM = 1 + len(STEPS)


async def production_rate(client: Client, queue: str, items: int, concurrency: int) -> float:
    """Commands per second: ``items`` items registered and taken through ``STEPS`` by updates."""
    semaphore = asyncio.Semaphore(concurrency)
    run = datetime.now(UTC).strftime("%H%M%S")
    at = datetime.now(UTC) - timedelta(minutes=10)

    async def one(n: int) -> None:
        item = f"bench-{run}-{n:05d}"
        async with semaphore:
            reg = Registration(item, "greenery", at, department="parks", town="xicheng", source="bench")
            await start_item(client, ItemWorkflowInput(reg), queue)
            handle = client.get_workflow_handle(item_workflow_id(item))
            for k, (kind, actor, role, extra) in enumerate(STEPS):
                cmd = ItemCommand(
                    f"{item}/{kind}", kind, actor, at + timedelta(seconds=k + 1), role=role, **extra
                )
                outcome = await apply_command(handle, cmd)
                assert outcome.applied, outcome

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(items)))
    return items * COMMANDS_PER_ITEM / (time.monotonic() - started)


async def main(items: int, concurrency: int) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-production-"))
    topology = Topology(work, f"sqlite:///{work / 'duban.db'}")
    topology.build(workers=2, projectors=1)
    for kind in ("gateway", "bridge"):
        topology.procs.pop(kind)
    try:
        await topology.up()
        client = await Client.connect(topology.temporal)
        baseline = await trivial_rate(client, items, concurrency)
        commands = await production_rate(client, topology.task_queue, items, concurrency)
    finally:
        topology.down()
        shutil.rmtree(work, ignore_errors=True)
    print(f"items                          {items}")
    print(f"trivial workflow (items/s)     {baseline:10.1f}")
    print(f"production path (commands/s)   {commands:10.1f}")
    print(f"ratio commands/trivial         {commands / baseline:10.3f}")
    return commands / baseline


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.concurrency))
