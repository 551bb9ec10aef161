"""duban's Kafka topics: the events topic and its dead letters, created when missing.

Both the worker (before it publishes) and the projector (before it consumes) create them, so a broker
that restarted empty gets them back (issue 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from events.errors import TopicsUnavailable

TOPIC_ALREADY_EXISTS = 36
"""Kafka protocol error code: the topic exists (another process created it first)."""


class TopicSettings(Protocol):
    """What creating the topics needs; ``duban.config.Settings`` has it."""

    @property
    def kafka_target(self) -> str:
        """Bootstrap servers, ``host:port[,host:port…]``."""
        ...

    @property
    def events_topic(self) -> str: ...

    @property
    def dead_letter_topic(self) -> str: ...

    @property
    def topic_partitions(self) -> int: ...


async def ensure_topics(settings: TopicSettings, bootstrap: str | None = None) -> list[str]:
    """Create duban's topics (events and dead letters, ``topic_partitions`` each, replication 1) if
    missing; idempotent.

    Args:
        bootstrap: bootstrap servers to use instead of ``settings.kafka_target``.

    Returns:
        The names of the topics this call created (empty if all existed).

    Raises:
        TopicsUnavailable: the broker cannot be reached or refuses to create a topic.
    """
    names = (settings.events_topic, settings.dead_letter_topic)
    return await create_missing_topics(bootstrap or settings.kafka_target, names, settings.topic_partitions)


async def create_missing_topics(target: str, names: Sequence[str], partitions: int) -> list[str]:
    """Create the topics of ``names`` that ``target`` (bootstrap servers) lacks, with ``partitions``
    each and replication 1; the names created. Raises ``TopicsUnavailable`` as ``ensure_topics``."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=target, request_timeout_ms=10_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [t for t in names if t not in existing]
        if not wanted:
            return []
        news = [NewTopic(t, partitions, 1) for t in wanted]
        response = await admin.create_topics(news)
        for err in response.to_object().get("topic_errors", []):
            if err["error_code"] not in (0, TOPIC_ALREADY_EXISTS):
                raise TopicsUnavailable(f"kafka {target}: cannot create topic {err['topic']}: {err}")
        return wanted
    except KafkaError as exc:
        raise TopicsUnavailable(f"kafka {target}: {exc!r}") from exc
    finally:
        await admin.close()
