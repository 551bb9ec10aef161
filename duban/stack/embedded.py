"""The embedded stack: a Temporal dev server and a Tansu (Kafka-compatible) broker as daemons.

Only services whose address is not configured are embedded; a configured address is "external" and is
only probed. Each embedded process runs in its own session, logs to ``<data_dir>/logs/<name>.log`` and
has its pid in ``<data_dir>/run/<name>.pid``. All functions are synchronous (they run their asyncio
parts on a private loop, in a helper thread when called from inside a running loop).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from duban import config
from duban.config import Settings
from duban.errors import StackError
from duban.logs import quiet_logger
from duban.stack.apps import apps_down, apps_status, apps_up
from duban.stack.binaries import find_binary
from duban.stack.daemons import Spec, alive, launch, log_file, read_pid, stop, tail
from duban.stack.probes import (
    HOST,
    ensure_topics,
    host_port,
    port_answers,
    port_free,
    temporal_ready,
)
from duban.stack.status import ServiceStatus, StackStatus, check_database, projection_status

TEMPORAL_READY_TIMEOUT_S = 60.0
KAFKA_READY_TIMEOUT_S = 30.0
_T = TypeVar("_T")


__all__ = ["EmbeddedPorts", "ServiceStatus", "StackStatus", "stack_down", "stack_status", "stack_up"]


@dataclass(frozen=True)
class EmbeddedPorts:
    """TCP ports of the embedded services on 127.0.0.1 (tests pass free ones)."""

    temporal: int = int(config.EMBEDDED_TEMPORAL_ADDRESS.rsplit(":", 1)[1])
    temporal_ui: int = config.EMBEDDED_TEMPORAL_UI_PORT
    kafka: int = int(config.EMBEDDED_KAFKA_BOOTSTRAP.rsplit(":", 1)[1])
    gateway: int = 8080


def _specs(settings: Settings, ports: EmbeddedPorts) -> list[Spec]:
    temporal = Spec("temporal", "temporal", ports.temporal, (ports.temporal_ui,), "DUBAN_TEMPORAL_ADDRESS")
    kafka = Spec("kafka", "tansu", ports.kafka, (), "DUBAN_KAFKA_BOOTSTRAP")
    return [temporal] * settings.temporal_embedded + [kafka] * settings.kafka_embedded


def _command(spec: Spec, settings: Settings, ports: EmbeddedPorts) -> list[str]:
    binary = str(find_binary(spec.binary))
    if spec.name == "kafka":
        url = f"tcp://{HOST}:{ports.kafka}"
        args = f"broker --listener-url {url} --advertised-listener-url {url} --storage-engine memory://tansu/"
        return [binary, *args.split()]
    from workflows.search_attributes import dev_server_flags

    args = (
        f"server start-dev --ip {HOST} --port {ports.temporal} --ui-port {ports.temporal_ui} --log-level warn"
        " --log-format json --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal"
    )
    db = str((settings.data_dir / "temporal.db").resolve())
    cmd = [binary, *args.split(), "--db-filename", db, *dev_server_flags()]
    if settings.temporal_namespace != "default":
        cmd += ["--namespace", settings.temporal_namespace]
    return cmd


async def _then_collect(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        return await coro
    finally:
        # Free temporalio's bridge clients while their loop lives: left to interpreter finalization
        # they abort a short-lived process about one time in three (PyGILState_Release, sdk-python#300).
        gc.collect()


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_then_collect(coro))
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _then_collect(coro)).result()


async def _wait_ready(spec: Spec, settings: Settings, pid: int, address: str) -> None:
    timeout = TEMPORAL_READY_TIMEOUT_S if spec.name == "temporal" else KAFKA_READY_TIMEOUT_S
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not alive(pid, spec.binary):
            log = log_file(settings, spec.name)
            raise StackError(f"{spec.name} exited during start-up; tail of {log}:\n{tail(log)}")
        try:
            probe = (
                temporal_ready(address, settings.temporal_namespace)
                if spec.name == "temporal"
                else ensure_topics(settings, address)  # the broker answers and has duban's topics
            )
            with quiet_logger("aiokafka"):  # refused connections are expected while the broker starts
                await asyncio.wait_for(probe, timeout=10)
            return
        except Exception as exc:  # not ready yet: any connection/RPC error
            last = exc
        await asyncio.sleep(0.25)
    log = log_file(settings, spec.name)
    raise StackError(
        f"{spec.name} not ready on {address} after {timeout:.0f} s ({last!r}); tail of {log}:\n{tail(log)}"
    )


def _status(settings: Settings, ports: EmbeddedPorts, database: ServiceStatus) -> StackStatus:
    services: list[ServiceStatus] = []
    embedded = {s.name: s for s in _specs(settings, ports)}
    for name, target in (("temporal", settings.temporal_target), ("kafka", settings.kafka_target)):
        spec = embedded.get(name)
        if spec is None:
            answering = port_answers(*host_port(target), timeout_s=2)
            services.append(
                ServiceStatus(name, target, "external", detail="answering" if answering else "not answering")
            )
            continue
        pid = read_pid(settings, spec)
        address = f"{HOST}:{spec.port}"
        answering = port_answers(HOST, spec.port)
        if pid:
            detail = "answering" if answering else "not answering"
        else:  # ours is not running, but something may hold the port: a stack of another data dir
            detail = (
                "its port answers: a process not started from this data dir holds it" if answering else ""
            )
        services.append(
            ServiceStatus(
                name, address, "running" if pid else "stopped", pid, log_file(settings, name), detail
            )
        )
    services += apps_status(settings, ports.gateway)
    services.append(database)
    projection = projection_status(settings) if database.detail != "created on first use" else None
    if projection is not None:
        services.append(projection)
    ui = f"http://{HOST}:{ports.temporal_ui}" if settings.temporal_embedded else None
    return StackStatus(tuple(services), ui)


def stack_status(settings: Settings, ports: EmbeddedPorts | None = None) -> StackStatus:
    """Report every service without starting or stopping anything (a stale pid file is removed).

    Args:
        ports: the ports the stack was started with (default: the standard ones).
    """
    return _status(settings, ports or EmbeddedPorts(), check_database(settings, strict=False))


def stack_up(settings: Settings, ports: EmbeddedPorts | None = None, apps: bool = False) -> StackStatus:
    """Start the embedded services that are not running, wait until they answer, create the topics.

    Idempotent: a service whose pid is alive is left alone (only re-probed; missing topics are
    created again); a stale pid file is removed. External services are only probed; duban's topics
    are created on the embedded broker only (see ``ensure_topics``). Waits up to 60 s for Temporal
    and 30 s for Kafka; takes about 1 s when both start.

    Args:
        ports: ports for the embedded services (default: 7233, 8233 and 9092 on 127.0.0.1, and the
            gateway's 8080).
        apps: also start duban's worker, projection and gateway (``duban.stack.apps``).

    Raises:
        StackError: a port is taken by another process, a binary is missing, a service does not
            become ready in time (the message carries the tail of its log), or the database does not
            answer. Services started by a failing call are stopped again.
    """
    ports = ports or EmbeddedPorts()
    for sub in ("logs", "run"):
        (settings.data_dir / sub).mkdir(parents=True, exist_ok=True)
    database = check_database(settings)
    specs = _specs(settings, ports)
    running = {s.name: pid for s in specs if (pid := read_pid(settings, s)) is not None}
    to_start = [s for s in specs if s.name not in running]
    for spec in to_start:
        for port in (spec.port, *spec.extra_ports):
            if not port_free(port):
                raise StackError(
                    f"port {port} needed by the embedded {spec.name} is already in use by "
                    f"another process; stop it, or set {spec.env_var} to use an external "
                    f"{spec.name}"
                )
    commands = {s.name: _command(s, settings, ports) for s in to_start}  # finds binaries up front
    started: dict[str, int] = {}
    try:
        for spec in to_start:
            started[spec.name] = running[spec.name] = launch(spec, commands[spec.name], settings)

        async def _ready() -> None:
            await asyncio.gather(
                *(_wait_ready(s, settings, running[s.name], f"{HOST}:{s.port}") for s in specs)
            )

        _run(_ready())
        if apps:
            apps_up(settings, f"{HOST}:{ports.temporal}", f"{HOST}:{ports.kafka}", ports.gateway)
    except BaseException:
        for spec in specs:
            if spec.name in started:
                stop(settings, spec, started[spec.name])
        raise
    return _status(settings, ports, database)


def stack_down(settings: Settings, ports: EmbeddedPorts | None = None) -> StackStatus:
    """Stop duban's processes started by ``stack_up(apps=True)``, then the embedded services: SIGTERM
    to each process group, SIGKILL after 15 s; pid files removed.

    External services are left alone. Stopping a stack that is not running does nothing.

    Raises:
        StackError: a process cannot be signalled (it belongs to another user).
    """
    ports = ports or EmbeddedPorts()
    apps_down(settings)
    for spec in _specs(settings, ports):
        pid = read_pid(settings, spec)
        if pid is not None:
            stop(settings, spec, pid)
    return stack_status(settings, ports)
