"""Kafka producer settings shared by duban's publishers."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.errors import BrokerResponseError

from duban.config import Settings
from duban.errors import ConfigurationError


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


async def start_producer(producer: AIOKafkaProducer, settings: Settings) -> None:
    """Start ``producer`` (made by ``make_producer(settings)``).

    Raises:
        ConfigurationError: naming ``kafka_idempotent``, when the broker answered but refused to
            start an idempotent producer (a broker without InitProducerId, such as the embedded one
            named in ``DUBAN_KAFKA_BOOTSTRAP``: aiokafka then raises a bare ``UnknownError``).
        aiokafka.errors.KafkaError: any other failure to start (no broker answers).
    """
    try:
        await producer.start()
    except BrokerResponseError as exc:
        if not settings.kafka_idempotence:
            raise
        raise ConfigurationError(
            f"kafka_idempotent: the broker at {settings.kafka_target} refused an idempotent producer "
            f"({type(exc).__name__}: InitProducerId); set DUBAN_KAFKA_IDEMPOTENT=false for a broker "
            "without it (the embedded one)"
        ) from exc
