"""The README's examples for integrators, run as they stand against a real gateway (uvicorn, the dev
server, the broker, SQLite): the shell block through the HTTP API, the Open311 block, and the Python
block on the command topic. The one change made to them is the gateway's address (a free port here
instead of 8080)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from helpers.gateway import RunningGateway, running_gateway
from helpers.paths import REPO
from temporalio.testing import WorkflowEnvironment

from events.store import EventStore


def block(marker: str) -> str:
    """The fenced code block after ``<!-- integrators:<marker> -->`` in the README."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text.split(f"<!-- integrators:{marker} -->", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('readme') / 'gateway.db'}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(
    dev_env: WorkflowEnvironment, broker: str, database_url: str
) -> AsyncIterator[RunningGateway]:
    topics = {  # the README's topic names
        "commands_topic": "duban.commands",
        "command_results_topic": "duban.command-results",
        "commands_dead_letter_topic": "duban.commands.dlq",
    }
    async with running_gateway(dev_env, broker, database_url, with_bridge=True, **topics) as gw:
        yield gw


def environment(gw: RunningGateway, **extra: str) -> dict[str, str]:
    scripts = str(Path(sys.executable).parent)  # where the venv's duban script is
    return (
        os.environ
        | {
            "PATH": f"{scripts}:{os.environ['PATH']}",
            "DUBAN_DATABASE_URL": gw.settings.database,
            "DUBAN_LOG_LEVEL": "ERROR",
        }
        | extra
    )


async def bash(script: str, env: dict[str, str]) -> str:
    def run() -> str:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        return done.stdout

    return await asyncio.to_thread(run)


async def test_the_shell_and_open311_examples_run_as_written(gateway: RunningGateway) -> None:
    shell = block("shell").replace("http://127.0.0.1:8080", gateway.url)
    out = await bash(shell + 'echo "ITEM=$ITEM KEY=$KEY"\n', environment(gateway))
    *answers, names = [line for line in out.splitlines() if line.strip()]
    item, key = re.fullmatch(r"ITEM=(\S+) KEY=(\S+)", names).groups()  # type: ignore[union-attr]
    registered, *commands, shown = (json.loads(a) for a in answers)
    assert registered["item_id"] == item and registered["department"] == "parks" and registered["created"]
    assert [c["applied"] for c in commands] == [True] * 5
    assert shown["stage"] == "closed" and shown["on_time"] is True
    stored = list(EventStore(gateway.engine).read(item))
    assert [e["event_type"] for e in shown["timeline"]] == [e.event_type for e in stored]
    actors = {e.event_type: e.actor for e in stored}
    assert actors["ItemDispatched"] == "hotline/zhao" and actors["RectificationVerified"] == "hotline/chen"

    open311 = block("open311")
    env = environment(gateway, DUBAN=gateway.url, KEY=key)
    row = await gateway.projected(item, "closed")
    for _ in range(50):
        posted, closed, services = (await bash(open311, env)).splitlines()
        listed = {r["service_request_id"]: r for r in json.loads(closed)}
        if item in listed:
            break
        await asyncio.sleep(0.2)
    [request] = json.loads(posted)
    assert request["service_request_id"].startswith("o311-")
    assert listed[item]["status"] == "closed" and listed[item]["agency_responsible"] == "parks"
    expected = datetime.fromisoformat(listed[item]["expected_datetime"])
    assert expected.utcoffset() == timedelta(hours=8)  # the item's own zone, Asia/Shanghai
    assert expected == row.resolution_deadline == datetime.fromisoformat(shown["resolution_deadline"])
    assert "<service_code>litter</service_code>" in services


async def test_the_topic_example_runs_as_written(gateway: RunningGateway) -> None:
    key = gateway.key("field-app")
    env = environment(gateway, KEY=key, KAFKA=gateway.settings.kafka_target)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", block("topic")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    item = done.stdout.strip()
    results = await gateway.read_until("duban.command-results", lambda r: r["item_id"] == item)
    [(command_id, result)] = [(k.decode(), r) for k, r in results if r["item_id"] == item]
    assert command_id == f"{item}/dispatch" and result["applied"] and result["integrator"] == "field-app"
    assert [e.event_type for e in EventStore(gateway.engine).read(item)][:2] == [
        "ItemRegistered",
        "ItemDispatched",
    ]
