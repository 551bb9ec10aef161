"""Probes of the services duban talks to: TCP ports, the Kafka topics, Temporal, the database.

Shared by the embedded stack (``duban.stack``), the main job and the tests.
"""

from __future__ import annotations

import socket
import time

from duban.config import Settings
from duban.errors import StackError

HOST = "127.0.0.1"


def port_free(port: int) -> bool:
    """True if nothing listens on ``127.0.0.1:port`` (a bind succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
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
    """Create duban's topics (events and dead letters) if missing; idempotent.

    Args:
        settings: topic names and partition count come from here.
        bootstrap: bootstrap servers to use instead of ``settings.kafka_target``.

    Returns:
        The names of the topics this call created (empty if all existed).

    Raises:
        StackError: the broker cannot be reached or refuses to create a topic.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    target = bootstrap or settings.kafka_target
    admin = AIOKafkaAdminClient(bootstrap_servers=target, request_timeout_ms=10_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [t for t in (settings.events_topic, settings.dead_letter_topic) if t not in existing]
        if not wanted:
            return []
        news = [NewTopic(t, settings.topic_partitions, 1) for t in wanted]
        response = await admin.create_topics(news)
        for err in response.to_object().get("topic_errors", []):
            if err["error_code"] not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
                raise StackError(f"kafka {target}: cannot create topic {err['topic']}: {err}")
        return wanted
    except KafkaError as exc:
        raise StackError(f"kafka {target}: {exc!r}") from exc
    finally:
        await admin.close()


async def temporal_ready(address: str, namespace: str) -> None:
    """Return once the Temporal frontend at ``address`` is healthy and ``namespace`` exists; raises
    the client's RPC error otherwise."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    await client.service_client.check_health()
    await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
