"""duban's own long-running processes beside the embedded stack: ``duban stack up --apps`` starts
the worker (``duban worker``), the projection (``duban project``) and the gateway (``duban serve``,
with the command topic bridge and the webhook dispatcher) as background processes of the data dir,
with pid and log files like the embedded services; ``duban stack down`` stops them first.

They run ``python -m duban`` of this interpreter with this environment, plus what makes them find
the same stack from the data dir: absolute ``DUBAN_DATA_DIR`` and ``DUBAN_CONFIG``, and the embedded
services' addresses when they are not the standard ones.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

from duban.config import Settings
from duban.errors import StackError
from duban.stack.daemons import Spec, alive, launch, log_file, read_pid, stop, tail
from duban.stack.probes import HOST
from duban.stack.status import ServiceStatus

READY_TIMEOUT_S = 60.0
SETTLE_S = 2.0
"""A worker or projection still alive this long after its start has connected (they exit at once,
with the reason in their log, when Temporal, the broker or the database do not answer)."""


def app_specs(gateway_port: int) -> list[Spec]:
    """The three processes, in start order."""
    return [Spec("worker", "duban", 0), Spec("projector", "duban", 0), Spec("gateway", "duban", gateway_port)]


def _command(spec: Spec) -> list[str]:
    args = {"worker": ["worker"], "projector": ["project"]}.get(
        spec.name, ["serve", "--host", HOST, "--port", str(spec.port)]
    )
    return [sys.executable, "-m", "duban", *args]


def _environment(settings: Settings, temporal: str, kafka: str) -> dict[str, str]:
    env = dict(os.environ) | {"DUBAN_DATA_DIR": str(settings.data_dir.resolve())}
    config = env.get("DUBAN_CONFIG") or ("duban.toml" if Path("duban.toml").is_file() else "")
    if config:
        env["DUBAN_CONFIG"] = str(Path(config).resolve())
    if settings.temporal_embedded:
        env["DUBAN_TEMPORAL_ADDRESS"] = temporal
    if settings.kafka_embedded:
        env |= {"DUBAN_KAFKA_BOOTSTRAP": kafka, "DUBAN_KAFKA_IDEMPOTENT": "false"}
    return env


def _wait(spec: Spec, settings: Settings, pid: int) -> None:
    deadline = time.monotonic() + (READY_TIMEOUT_S if spec.port else SETTLE_S)
    while time.monotonic() < deadline:
        if not alive(pid, spec.binary):
            log = log_file(settings, spec.name)
            raise StackError(f"{spec.name} exited during start-up; tail of {log}:\n{tail(log)}")
        if spec.port:
            try:
                if httpx.get(f"http://{HOST}:{spec.port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.25)
    if spec.port:
        log = log_file(settings, spec.name)
        raise StackError(f"{spec.name} not ready on {HOST}:{spec.port}; tail of {log}:\n{tail(log)}")


def apps_up(settings: Settings, temporal: str, kafka: str, gateway_port: int) -> None:
    """Start the processes that are not running (``temporal`` and ``kafka``: the stack's addresses)
    and wait: the gateway until ``/readyz`` answers 200, the others ``SETTLE_S``.

    Raises:
        StackError: a process exited or was not ready in time (with the tail of its log).
    """
    env = _environment(settings, temporal, kafka)
    for spec in app_specs(gateway_port):
        if read_pid(settings, spec) is None:
            _wait(spec, settings, launch(spec, _command(spec), settings, env))


def apps_down(settings: Settings) -> None:
    """Stop the processes (the gateway first, the worker last)."""
    for spec in reversed(app_specs(0)):
        pid = read_pid(settings, spec)
        if pid is not None:
            stop(settings, spec, pid)


def apps_status(settings: Settings, gateway_port: int) -> list[ServiceStatus]:
    """A row for each process that runs (none when ``--apps`` was not used)."""
    rows = []
    for spec in app_specs(gateway_port):
        pid = read_pid(settings, spec)
        if pid is not None:
            address = f"http://{HOST}:{spec.port}" if spec.port else "-"
            rows.append(ServiceStatus(spec.name, address, "running", pid, log_file(settings, spec.name)))
    return rows
