"""Probes of the services duban talks to: TCP ports, the Kafka topics, Temporal, the database.

Shared by the embedded stack (``duban.stack.embedded``), the main job and the tests.
"""

from __future__ import annotations

import socket
import time

from duban.config import Settings
from duban.errors import StackError
from events import topics
from events.errors import TopicsUnavailable

HOST = "127.0.0.1"


def port_free(port: int, host: str = HOST) -> bool:
    """True if nothing listens on ``host:port`` (default 127.0.0.1; a bind succeeds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds within ``timeout_s`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Block until a TCP connection to ``host:port`` succeeds.

    Args:
        timeout_s: how long to keep trying, in seconds.

    Raises:
        StackError: nothing accepted a connection within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while not port_answers(host, port):
        if time.monotonic() >= deadline:
            raise StackError(f"nothing answers on {host}:{port} after {timeout_s:.0f} s")
        time.sleep(0.1)


def host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of the first address in ``"host:port[,host:port…]"``."""
    host, _, port = address.split(",")[0].strip().rpartition(":")
    return host.strip("[]") or HOST, int(port)


async def ensure_topics(settings: Settings, bootstrap: str | None = None) -> list[str]:
    """``events.topics.ensure_topics`` for the entry points: the names of the topics it created.

    Raises:
        StackError: the broker cannot be reached or refuses to create a topic.
    """
    try:
        return await topics.ensure_topics(settings, bootstrap)
    except TopicsUnavailable as exc:
        raise StackError(str(exc)) from exc


async def temporal_ready(address: str, namespace: str) -> None:
    """Return once the Temporal frontend at ``address`` is healthy and ``namespace`` exists; raises
    the client's RPC error otherwise."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    await client.service_client.check_health()
    await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
