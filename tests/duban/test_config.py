"""Configuration resolution: defaults, ``DUBAN_*`` variables, a TOML file, and named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from duban.config import (
    EMBEDDED_KAFKA_BOOTSTRAP,
    EMBEDDED_TEMPORAL_ADDRESS,
    Settings,
    load_settings,
)
from duban.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray ./duban.toml may leak into a test."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "custom.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.temporal_address is None and settings.temporal_embedded
    assert settings.temporal_target == EMBEDDED_TEMPORAL_ADDRESS == "127.0.0.1:7233"
    assert settings.kafka_bootstrap is None and settings.kafka_embedded
    assert settings.kafka_target == EMBEDDED_KAFKA_BOOTSTRAP == "127.0.0.1:9092"
    assert settings.temporal_namespace == "default"
    assert settings.task_queue == "duban-items"
    assert settings.events_topic == "duban.item-events"
    assert settings.dead_letter_topic == "duban.item-events.dlq"
    assert settings.topic_partitions == 3
    assert settings.data_dir == Path(".duban")
    assert settings.database == f"sqlite:///{(Path('.duban') / 'events.sql').resolve()}"


def test_environment_overrides() -> None:
    settings = load_settings(
        env={
            "DUBAN_TEMPORAL_ADDRESS": "temporal.example:7233",
            "DUBAN_TEMPORAL_NAMESPACE": "zibo",
            "DUBAN_TASK_QUEUE": "q1",
            "DUBAN_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "DUBAN_DATABASE_URL": "postgresql://u@db/duban",
            "DUBAN_DATA_DIR": "/var/lib/duban",
            "DUBAN_EVENTS_TOPIC": "ev",
            "DUBAN_DEAD_LETTER_TOPIC": "ev.dlq",
            "DUBAN_TOPIC_PARTITIONS": "12",
            "UNRELATED": "ignored",
        }
    )
    assert settings.temporal_target == "temporal.example:7233" and not settings.temporal_embedded
    assert settings.temporal_namespace == "zibo" and settings.task_queue == "q1"
    assert settings.kafka_target == "k1:9092,k2:9092" and not settings.kafka_embedded
    assert settings.database == "postgresql://u@db/duban"
    assert settings.data_dir == Path("/var/lib/duban")
    assert (settings.events_topic, settings.dead_letter_topic) == ("ev", "ev.dlq")
    assert settings.topic_partitions == 12


def test_empty_variable_is_ignored() -> None:
    assert load_settings(env={"DUBAN_TASK_QUEUE": ""}).task_queue == "duban-items"


def test_variable_values_are_stripped() -> None:
    assert load_settings(env={"DUBAN_TASK_QUEUE": "  q2 "}).task_queue == "q2"


def test_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'temporal_address = "t:7233"\ntopic_partitions = 6\nkafka_idempotent = false\ndata_dir = "state"\n',
    )
    settings = load_settings(env={}, config_file=path)
    assert settings.temporal_address == "t:7233"
    assert settings.topic_partitions == 6
    assert settings.kafka_idempotent is False
    assert settings.data_dir == Path("state")


def test_toml_named_by_duban_config(tmp_path: Path) -> None:
    path = write(tmp_path, 'task_queue = "from-file"\n')
    assert load_settings(env={"DUBAN_CONFIG": str(path)}).task_queue == "from-file"


def test_duban_toml_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path, 'events_topic = "cwd-topic"\n', name="duban.toml")
    assert load_settings(env={}).events_topic == "cwd-topic"


def test_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'task_queue = "from-file"\ntopic_partitions = 6\n')
    settings = load_settings(env={"DUBAN_TASK_QUEUE": "from-env"}, config_file=path)
    assert settings.task_queue == "from-env"
    assert settings.topic_partitions == 6


def test_unknown_key_in_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'task_queue = "q"\nkafka_bootstrapp = "typo:9092"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(env={}, config_file=path)
    assert "'kafka_bootstrapp'" in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"missing\.toml"):
        load_settings(env={}, config_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError, match=r"broken\.toml"):
        load_settings(env={}, config_file=write(tmp_path, "task_queue = \n", name="broken.toml"))


@pytest.mark.parametrize("value", ["three", "0", "-1", "2.5"])
def test_bad_topic_partitions_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(env={"DUBAN_TOPIC_PARTITIONS": value})
    assert "DUBAN_TOPIC_PARTITIONS" in str(info.value)
    assert "topic_partitions" in str(info.value)


def test_bad_value_in_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "task_queue = 5\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(env={}, config_file=path)
    assert str(path) in str(info.value) and "task_queue" in str(info.value)


def test_kafka_idempotence_off_when_embedded() -> None:
    assert load_settings(env={}).kafka_idempotence is False


def test_kafka_idempotence_on_with_a_configured_bootstrap() -> None:
    assert load_settings(env={"DUBAN_KAFKA_BOOTSTRAP": "k:9092"}).kafka_idempotence is True


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DUBAN_KAFKA_BOOTSTRAP": "k:9092", "DUBAN_KAFKA_IDEMPOTENT": "false"}, False),
        ({"DUBAN_KAFKA_BOOTSTRAP": "k:9092", "DUBAN_KAFKA_IDEMPOTENT": "off"}, False),
        ({"DUBAN_KAFKA_IDEMPOTENT": "true"}, True),
        ({"DUBAN_KAFKA_IDEMPOTENT": "Yes"}, True),
        ({"DUBAN_KAFKA_IDEMPOTENT": "1"}, True),
    ],
)
def test_kafka_idempotence_is_overridable(env: dict[str, str], expected: bool) -> None:
    assert load_settings(env=env).kafka_idempotence is expected


def test_bad_kafka_idempotent_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="DUBAN_KAFKA_IDEMPOTENT"):
        load_settings(env={"DUBAN_KAFKA_IDEMPOTENT": "maybe"})


@pytest.mark.parametrize("value", ["true", "2.7"])
def test_non_integer_topic_partitions_in_file_is_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"topic_partitions = {value}\n")
    with pytest.raises(ConfigurationError, match="topic_partitions"):
        load_settings(env={}, config_file=path)


@pytest.mark.parametrize(
    ("var", "value", "reason"),
    [
        ("DUBAN_TEMPORAL_ADDRESS", "nohostport", "is not host:port"),
        ("DUBAN_TEMPORAL_ADDRESS", "host:99999", "is not host:port"),
        ("DUBAN_KAFKA_BOOTSTRAP", "a:9092,b", "is not host:port"),
        ("DUBAN_DATABASE_URL", "mysql://x/y", "'mysql' databases are not supported"),
        ("DUBAN_DATABASE_URL", "not a url", "is not a database URL"),
    ],
)
def test_addresses_and_database_url_are_validated(var: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{var}: .*{reason}"):
        load_settings(env={var: value})


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "x", name="not-a-dir")
    with pytest.raises(ConfigurationError, match=r"DUBAN_DATA_DIR: data_dir .* is not a directory"):
        load_settings(env={"DUBAN_DATA_DIR": str(target)})
