"""Chaos harness: the production topology on one machine, items driven through it while processes
are killed with SIGKILL at random moments and restarted, then checked from the store's rows.

Topology (all started here, each a process of its own, as a city runs them): a Temporal dev server,
a Tansu broker (memory storage: a killed broker loses every topic and record), two ``duban worker``s,
two ``duban project``s, the gateway (``duban serve --no-bridge``) and the command topic bridge
(``duban bridge``), on one database (PostgreSQL by default, ``--database-url``).

Load: ``--items`` items, ``--concurrency`` at a time, half through the HTTP API and half through the
command topic, each taken through the lifecycle (register, dispatch, accept, submit the
rectification, verify, close) the way an integrator does it: a request that fails in transit (a
refused connection, a 5xx, no result on the topic within ``RESULT_WAIT_S``) is sent again with the
same ids, which the item applies once. Every tenth item first gets a command that is illegal then
(``close`` before dispatch): it must be refused and change nothing.

Faults: ``--kills`` SIGKILLs of each kind (worker, projector, gateway, bridge, broker) at random
moments of the expected run (seeded, ``--seed``), each process restarted ``RESTART_AFTER_S`` later.

Checks, from the event store's and read models' rows (never the projector's code or its figures):
every item the gateway accepted is stored and in ``item_view``; every stored event applied exactly
once (``applied_events`` equals the stored event ids; counters recomputed from the store rows equal
``unit_day_counters``); the read models equal a rebuild from the store in a scratch database; no
workflow failed, timed out, was terminated or still runs; every acknowledged command has its events
(``causation_id``), and no refused one has any. ``ChaosReport.problems`` lists each failed check.

Usage: python bench/chaos.py [--items 10000] [--concurrency 64] [--kills 1] [--seed 14]
                             [--database-url postgresql+psycopg://…] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from chaos_checks import ChaosReport, check_everything
from chaos_load import Load, LoadOptions
from sqlalchemy import create_engine, text

from duban.stack.binaries import find_binary
from duban.stack.probes import wait_for_port
from workflows.search_attributes import dev_server_flags

KINDS = ("worker", "projector", "gateway", "bridge", "broker")
RESTART_AFTER_S = 2.0
READY_TIMEOUT_S = 90.0
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """One process of the topology: ``name``, its command, environment and status port (0: none)."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    status_port: int = 0
    popen: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n--- {time.strftime('%H:%M:%S')} start {' '.join(self.cmd)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL the process and everything it started, as a crash would."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            self.popen = None
            self.kills += 1

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
            self.popen = None

    async def ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until ``/readyz`` of the status port answers 200 (or the port answers, without one)."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=3) as http:
            while time.monotonic() < deadline:
                if self.popen is not None and self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.popen.returncode}); see {self.log}")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.status_port}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout_s:.0f} s; see {self.log}")


@dataclass
class Topology:
    """The processes and the addresses they share."""

    work_dir: Path
    database_url: str
    temporal_port: int = field(default_factory=free_port)
    kafka_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    task_queue: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:6]}")
    procs: dict[str, list[Proc]] = field(default_factory=dict)

    @property
    def temporal(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def environment(self) -> dict[str, str]:
        return dict(os.environ) | {
            "DUBAN_TEMPORAL_ADDRESS": self.temporal,
            "DUBAN_KAFKA_BOOTSTRAP": self.kafka,
            "DUBAN_KAFKA_IDEMPOTENT": "false",
            "DUBAN_DATABASE_URL": self.database_url,
            "DUBAN_DATA_DIR": str(self.work_dir),
            "DUBAN_TASK_QUEUE": self.task_queue,
            "DUBAN_LOG_LEVEL": "INFO",
            "DUBAN_LOG_JSON": "1",
        }

    def build(self, workers: int = 2, projectors: int = 2) -> None:
        """Describe every process (nothing is started)."""
        env, logs = self.environment(), self.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        duban = [sys.executable, "-m", "duban"]
        dev = f"server start-dev --ip 127.0.0.1 --port {self.temporal_port} --headless --log-level warn"
        temporal = [str(find_binary("temporal")), *dev.split(), *dev_server_flags()]
        url = f"tcp://{self.kafka}"
        tansu = [str(find_binary("tansu")), "broker", "--listener-url", url, "--advertised-listener-url", url]
        self.procs["temporal"] = [Proc("temporal", temporal, env, logs / "temporal.log")]
        self.procs["broker"] = [
            Proc("broker", [*tansu, "--storage-engine", "memory://tansu/"], env, logs / "broker.log")
        ]

        def status(name: str, args: list[str]) -> Proc:
            port = free_port()
            return Proc(name, [*duban, *args, "--status-port", str(port)], env, logs / f"{name}.log", port)

        self.procs["worker"] = [status(f"worker-{n}", ["worker"]) for n in range(workers)]
        self.procs["projector"] = [status(f"projector-{n}", ["project"]) for n in range(projectors)]
        self.procs["bridge"] = [status("bridge", ["bridge"])]
        gateway = [*duban, "serve", "--no-bridge", "--no-webhooks", "--port", str(self.gateway_port)]
        self.procs["gateway"] = [Proc("gateway", gateway, env, logs / "gateway.log", self.gateway_port)]

    async def up(self) -> None:
        """Start every process in order and wait until each is ready."""
        self.procs["temporal"][0].start()
        self.procs["broker"][0].start()
        await asyncio.to_thread(wait_for_port, "127.0.0.1", self.temporal_port, 60)
        await asyncio.to_thread(wait_for_port, "127.0.0.1", self.kafka_port, 30)
        for kind in ("worker", "projector", "gateway", "bridge"):
            for proc in self.procs.get(kind, []):
                proc.start()
            await asyncio.gather(*(proc.ready() for proc in self.procs.get(kind, [])))

    async def crash(self, kind: str, rng: random.Random) -> str:
        """SIGKILL one process of ``kind`` (chosen with ``rng``), restart it after
        ``RESTART_AFTER_S`` and wait until it is ready again; its name."""
        proc = rng.choice(self.procs[kind])
        proc.kill()
        await asyncio.sleep(RESTART_AFTER_S)
        proc.start()
        if kind == "broker":
            await asyncio.to_thread(wait_for_port, "127.0.0.1", self.kafka_port, 30)
        else:
            await proc.ready()
        return proc.name

    async def supervise(self, log: list[str], stop: asyncio.Event) -> None:
        """Restart any app process that exited on its own (as Compose's ``restart: unless-stopped``
        does), noting it in ``log``."""
        while not stop.is_set():
            await asyncio.sleep(1.0)
            for kind in ("worker", "projector", "gateway", "bridge"):
                for proc in self.procs[kind]:
                    if proc.popen is not None and (code := proc.popen.poll()) is not None:
                        log.append(f"{proc.name} exited with status {code}, restarted (restart policy)")
                        proc.popen = None
                        proc.start()

    def down(self) -> None:
        """Stop every process (the apps first)."""
        for kind in ("gateway", "bridge", "projector", "worker", "broker", "temporal"):
            for proc in self.procs.get(kind, []):
                proc.stop()


@dataclass(frozen=True)
class ChaosOptions:
    """A run: items, items in flight, kills per process kind, the random seed, the database (empty:
    a fresh PostgreSQL database, dropped afterwards) and the expected length of the load in seconds
    (the kills fall at random moments within it)."""

    items: int = 10_000
    concurrency: int = 64
    kills: int = 1
    seed: int = 14
    database_url: str = ""
    expected_s: float = 0.0


def _fresh_postgres() -> tuple[str, str]:
    name = f"duban_chaos_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name


def _drop_postgres(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


async def _kill_schedule(topo: Topology, options: ChaosOptions, load: Load, log: list[str]) -> None:
    rng = random.Random(options.seed)
    expected = options.expected_s or max(30.0, options.items / 25)
    moments = sorted((rng.uniform(0.1, 0.8) * expected, kind) for kind in KINDS for _ in range(options.kills))
    started = time.monotonic()
    for at, kind in moments:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        if load.done.is_set():
            log.append(f"{kind}: not killed (the load ended first)")
            continue
        t = time.monotonic() - started
        name = await topo.crash(kind, rng)
        log.append(f"{t:6.1f} s  SIGKILL {name}, restarted")


async def run_chaos(options: ChaosOptions, work_dir: Path) -> ChaosReport:
    """Start the topology, drive the load while the kills fall, check everything, stop it all."""
    dropped = ""
    url = options.database_url
    if not url:
        url, dropped = _fresh_postgres()
    topo = Topology(work_dir, url)
    topo.build()
    kills: list[str] = []
    try:
        await topo.up()
        load = Load(
            topo.gateway_url, topo.kafka, topo.database_url, LoadOptions(options.items, options.concurrency)
        )
        started = time.monotonic()
        faults = asyncio.create_task(_kill_schedule(topo, options, load, kills))
        stop = asyncio.Event()
        supervisor = asyncio.create_task(topo.supervise(kills, stop))
        await load.run()
        load_s = time.monotonic() - started
        await faults
        stop.set()
        await supervisor
        report = await check_everything(topo.database_url, topo.temporal, topo.task_queue, load)
        report.load_s, report.kills = load_s, kills
        return report
    finally:
        topo.down()
        if dropped:
            _drop_postgres(dropped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs of each process kind")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--database-url", default="", help="default: a fresh PostgreSQL database")
    parser.add_argument("--work-dir", type=Path, default=None, help="logs of every process (default: temp)")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="duban-chaos-"))
    options = ChaosOptions(args.items, args.concurrency, args.kills, args.seed, args.database_url)
    report = asyncio.run(run_chaos(options, work))
    print(report.render())
    slow = sorted(report.durations.items(), key=lambda kv: -kv[1])[:5]
    print("slowest items: " + ", ".join(f"{item} {s:.1f} s" for item, s in slow))
    print(f"logs: {work / 'logs'}")
    sys.exit(0 if not report.problems else 1)


if __name__ == "__main__":
    main()
