"""Issue 14: the production topology as processes (``bench/chaos.py``'s ``Topology``: dev server,
broker, ``duban worker``, ``duban project``, ``duban serve --no-bridge`` and ``duban bridge`` on
PostgreSQL). What operators see — ``/metrics``, ``/healthz``, ``/readyz`` and JSON logs with item and
command ids — moving as a run proceeds; and the short chaos run: 500 items while each kind of
process is SIGKILLed once, every figure checked from the store's rows."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from helpers.gateway import LIFECYCLE, command
from helpers.items import item
from helpers.paths import REPO
from prometheus_client.parser import text_string_to_metric_families

from duban.gateway.keys import KeyStore, Scope
from events.sql import make_engine
from events.store import EventStore

sys.path.insert(0, str(REPO / "bench"))
import chaos
from chaos_load import registration

pytestmark = [pytest.mark.slow, pytest.mark.topology]


def figures(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert reply.status_code == 200, reply.text
    return figures(reply.text)


async def until(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    for _ in range(int(timeout_s / 0.25)):
        if found := await check():
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"never: {what}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def topology(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[chaos.Topology]:
    url, name = chaos._fresh_postgres()
    topo = chaos.Topology(tmp_path_factory.mktemp("topology"), url)
    topo.build(workers=1, projectors=1)
    try:
        await topo.up()
        yield topo
    finally:
        topo.down()
        chaos._drop_postgres(name)


async def test_every_process_reports_health_readiness_and_metrics_that_move(topology: chaos.Topology) -> None:
    worker, projector = topology.procs["worker"][0], topology.procs["projector"][0]
    bridge, gateway = topology.procs["bridge"][0], topology.procs["gateway"][0]
    async with httpx.AsyncClient(timeout=10) as http:
        for proc in (worker, projector, bridge, gateway):
            assert (await http.get(f"http://127.0.0.1:{proc.status_port}/healthz")).json() == {"status": "ok"}
            ready = await http.get(f"http://127.0.0.1:{proc.status_port}/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True, (proc.name, ready.text)
    engine = make_engine(topology.database_url)
    before = {p.name: await scrape(p.status_port) for p in (worker, projector, gateway)}

    # One item through its lifecycle over HTTP: commands counted by kind, requests timed.
    _, key = KeyStore(engine).create("observer", Scope.of("*", "*", "*", "*"))
    item_id = "obs-http-1"
    async with httpx.AsyncClient(
        base_url=topology.gateway_url, headers={"X-API-Key": key}, timeout=60
    ) as http:
        reported = datetime.now(UTC) - timedelta(minutes=5)
        assert (await http.post("/v1/items", json=registration(item_id, reported))).status_code == 201
        for n, (kind, role, fields) in enumerate(LIFECYCLE):
            body = command(kind, role, n, **fields) | {"command_id": f"{item_id}/{kind}"}
            done = await http.post(f"/v1/items/{item_id}/commands", json=body)
            assert done.status_code == 200 and done.json()["applied"], done.text
        other = "obs-http-2"  # closing an item never dispatched: refused by the item's rules
        assert (await http.post("/v1/items", json=registration(other, reported))).status_code == 201
        early = command("close", "dispatcher", 9) | {"command_id": f"{other}/close"}
        assert (await http.post(f"/v1/items/{other}/commands", json=early)).status_code == 409
    seen = await scrape(gateway.status_port)
    for kind, _, _ in LIFECYCLE:
        grew = value(seen, "duban_commands_total", kind=kind, outcome="applied", reason="")
        was = value(before["gateway"], "duban_commands_total", kind=kind, outcome="applied", reason="")
        assert grew - was == 1, kind
    assert value(seen, "duban_commands_total", kind="close", outcome="refused", reason="IllegalCommand") == 1
    route = {"method": "POST", "route": "/v1/items/{item_id}/commands", "status": "200"}
    assert value(seen, "duban_http_request_duration_seconds_count", **route) == len(LIFECYCLE)
    assert any(name.startswith("temporal_") for name, _ in seen), "the SDK's metrics ride along"

    # The worker: the SDK's workflow task counters grew with the item's tasks.
    def tasks(found: dict[Any, float]) -> float:
        wanted = "temporal_workflow_task_execution_latency_count"
        return sum(v for (n, _), v in found.items() if n == wanted)

    now = await scrape(worker.status_port)
    assert tasks(now) > tasks(before[worker.name]), sorted({n for n, _ in now if n.startswith("temporal")})

    # The projector: events stored behind the topic's back are backlog until the sweep applies them.
    applied0 = value(await scrape(projector.status_port), "duban_projection_events_applied_total")
    hidden = item("obs-store-1") + item("obs-store-2")
    assert EventStore(engine).append(hidden) == len(hidden)
    found = await scrape(projector.status_port)
    assert value(found, "duban_projection_backlog_events") >= len(hidden)

    async def drained() -> Any:
        now = await scrape(projector.status_port)
        return now if value(now, "duban_projection_backlog_events") == 0 else None

    after = await until(drained, "the backlog drained")
    assert value(after, "duban_projection_events_applied_total") - applied0 >= len(hidden)
    assert {labels for name, labels in after if name == "duban_projection_partition_lag_records"}

    # A malformed message on the events topic: one more dead letter.
    dead0 = value(after, "duban_projection_events_dead_lettered_total")
    producer = AIOKafkaProducer(bootstrap_servers=topology.kafka)
    await producer.start()
    try:
        await producer.send_and_wait("duban.item-events", b"{not json", key=b"obs-bad")
    finally:
        await producer.stop()

    async def dead_lettered() -> Any:
        now = await scrape(projector.status_port)
        return value(now, "duban_projection_events_dead_lettered_total") == dead0 + 1

    await until(dead_lettered, "the malformed message dead-lettered")
    engine.dispose()

    # JSON logs carry the item and command ids.
    lines = [json.loads(line) for line in _json_lines(gateway.log)]
    ids = {(r.get("item_id"), r.get("command_id")) for r in lines if r.get("event") == "http.request"}
    assert (item_id, f"{item_id}/accept") in ids


def _json_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("{")]


async def test_500_items_hold_while_each_kind_of_process_is_killed(tmp_path: Path) -> None:
    options = chaos.ChaosOptions(items=500, concurrency=48, kills=1, seed=10, expected_s=40.0)
    report = await chaos.run_chaos(options, tmp_path)
    print(report.render())
    killed = {k.split("SIGKILL ")[1].split(",")[0].split("-")[0] for k in report.kills if "SIGKILL" in k}
    assert killed == set(chaos.KINDS), report.kills
    assert report.problems == [], report.render()
    assert report.accepted == 500 and report.lost_items == 0 and report.double_counts == 0
    assert report.failed_workflows == 0 and report.running_workflows == 0
    # 500 items × 5 lifecycle commands, and the illegal close of every tenth item refused
    assert report.acknowledged == 500 * 5 and report.refused == 50
    assert report.stored_events == report.applied_events == 500 * 6
