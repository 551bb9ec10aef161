"""Kafka producer settings shared by duban's publishers."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from duban.config import Settings


def make_producer(settings: Settings, bootstrap: str | None = None) -> AIOKafkaProducer:
    """An (unstarted) producer for duban's events.

    ``acks="all"``; idempotence follows ``settings.kafka_idempotence`` (on for a real Kafka, off for
    the embedded broker, which lacks InitProducerId). Messages are keyed by item id by the caller.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap or settings.kafka_target,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=5,
        request_timeout_ms=30000,
    )
