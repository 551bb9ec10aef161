"""A broker without InitProducerId (the embedded Tansu) named in ``DUBAN_KAFKA_BOOTSTRAP`` turns the
idempotent producer on; starting then fails with a bare ``UnknownError`` from aiokafka. duban names
the setting to change instead (a new user's walk-through met it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from duban import wiring
from duban.config import Settings
from duban.errors import ConfigurationError
from events.sql import make_engine


async def test_a_broker_refusing_idempotence_names_the_setting(broker: str, tmp_path: Path) -> None:
    settings = replace(Settings(), kafka_bootstrap=broker, database_url=f"sqlite:///{tmp_path / 'a.db'}")
    assert settings.kafka_idempotence  # a configured address means a real Kafka, by default
    engine = make_engine(settings.database)
    with pytest.raises(ConfigurationError, match="DUBAN_KAFKA_IDEMPOTENT=false") as refused:
        async with wiring.recording(settings, engine):
            pass
    assert refused.value.args[0].startswith(f"kafka_idempotent: the broker at {broker} refused")
    fixed = replace(settings, kafka_idempotent=False)
    async with wiring.recording(fixed, engine) as rec:  # the hint's setting is what it takes
        assert rec.producer is not None
