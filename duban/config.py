"""Configuration: environment variables, then an optional TOML file, then the embedded defaults.

Precedence (highest first): ``DUBAN_*`` environment variables; the TOML file named by
``DUBAN_CONFIG`` (or ``duban.toml`` in the working directory if present), whose keys are the setting
names below in lower case (``topic_partitions = 3``); the defaults below.
A service address left unset means "use the embedded stack" (``duban stack up`` starts it); an
address that is set means "use that service and start nothing".

| setting             | variable                  | default                                  |
|---------------------|---------------------------|------------------------------------------|
| temporal_address    | DUBAN_TEMPORAL_ADDRESS    | embedded dev server, 127.0.0.1:7233      |
| temporal_namespace  | DUBAN_TEMPORAL_NAMESPACE  | default                                  |
| task_queue          | DUBAN_TASK_QUEUE          | duban-items                              |
| kafka_bootstrap     | DUBAN_KAFKA_BOOTSTRAP     | embedded broker, 127.0.0.1:9092          |
| kafka_idempotent    | DUBAN_KAFKA_IDEMPOTENT    | false when embedded, true otherwise      |
| database_url        | DUBAN_DATABASE_URL        | sqlite file ``<data_dir>/events.sql``      |
| data_dir            | DUBAN_DATA_DIR            | ``./.duban``                             |
| events_topic        | DUBAN_EVENTS_TOPIC        | duban.item-events                        |
| dead_letter_topic   | DUBAN_DEAD_LETTER_TOPIC   | duban.item-events.dlq                    |
| topic_partitions    | DUBAN_TOPIC_PARTITIONS    | 3                                        |
| commands_topic      | DUBAN_COMMANDS_TOPIC      | duban.commands                           |
| command_results_topic | DUBAN_COMMAND_RESULTS_TOPIC | duban.command-results                |
| commands_dead_letter_topic | DUBAN_COMMANDS_DEAD_LETTER_TOPIC | duban.commands.dlq         |
| webhook_retry_initial_s | DUBAN_WEBHOOK_RETRY_INITIAL_S | 1 (seconds before the first retry)   |
| webhook_retry_max_interval_s | DUBAN_WEBHOOK_RETRY_MAX_INTERVAL_S | 600 (longest wait between tries) |
| webhook_give_up_after_s | DUBAN_WEBHOOK_GIVE_UP_AFTER_S | 86400 (then the delivery is parked)  |
| documents_lang      | DUBAN_DOCUMENTS_LANG      | zh-CN (or en): the office's documents    |
| documents_template  | DUBAN_DOCUMENTS_TEMPLATE  | the built-in template (a YAML file)      |
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from duban.errors import ConfigurationError

EMBEDDED_TEMPORAL_ADDRESS = "127.0.0.1:7233"
EMBEDDED_TEMPORAL_UI_PORT = 8233
EMBEDDED_KAFKA_BOOTSTRAP = "127.0.0.1:9092"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. ``None`` for an address means the embedded service."""

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = "duban-items"
    kafka_bootstrap: str | None = None
    kafka_idempotent: bool | None = None
    database_url: str | None = None
    data_dir: Path = Path(".duban")
    events_topic: str = "duban.item-events"
    dead_letter_topic: str = "duban.item-events.dlq"
    topic_partitions: int = 3
    commands_topic: str = "duban.commands"
    command_results_topic: str = "duban.command-results"
    commands_dead_letter_topic: str = "duban.commands.dlq"
    webhook_retry_initial_s: float = 1.0
    webhook_retry_max_interval_s: float = 600.0
    webhook_give_up_after_s: float = 86_400.0
    documents_lang: str = "zh-CN"
    documents_template: str = ""

    @property
    def temporal_target(self) -> str:
        """host:port of the Temporal frontend to use (the embedded one if none is configured)."""
        return self.temporal_address or EMBEDDED_TEMPORAL_ADDRESS

    @property
    def kafka_target(self) -> str:
        """Comma-separated bootstrap servers to use (the embedded broker if none is configured)."""
        return self.kafka_bootstrap or EMBEDDED_KAFKA_BOOTSTRAP

    @property
    def kafka_idempotence(self) -> bool:
        """Whether producers ask for idempotence; off for the embedded broker (no InitProducerId)."""
        if self.kafka_idempotent is not None:
            return self.kafka_idempotent
        return self.kafka_bootstrap is not None

    @property
    def database(self) -> str:
        """SQLAlchemy URL of the read-model and event-store database."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'events.sql').resolve()}"

    @property
    def temporal_embedded(self) -> bool:
        return self.temporal_address is None

    @property
    def kafka_embedded(self) -> bool:
        return self.kafka_bootstrap is None


_BOOL = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def _check_addresses(value: str, source: str) -> str:
    """Validate ``host:port[,host:port…]`` (port 1–65535); return it unchanged."""
    for part in value.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"{source}: {part.strip()!r} is not host:port (port 1-65535)")
    return value


def check_database_url(value: str, source: str) -> str:
    """Validate a SQLAlchemy URL for SQLite or PostgreSQL; return it unchanged.

    Raises:
        ConfigurationError: naming ``source`` (the setting or option), when it is not such a URL.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(value).get_backend_name()
    except ArgumentError:
        raise ConfigurationError(f"{source}: {value!r} is not a database URL") from None
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"{source}: {backend!r} databases are not supported (use sqlite or postgresql)"
        )
    return value


def _coerce(name: str, raw: Any, source: str) -> Any:
    """Turn a raw string/TOML value into the field's type; raise ConfigurationError naming it."""
    if name == "data_dir":
        path = Path(str(raw)).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigurationError(f"{source}: data_dir {path} exists and is not a directory")
        return path
    if name == "topic_partitions":
        is_int = type(raw) is int or (isinstance(raw, str) and raw.strip().isdigit())
        value = int(raw) if is_int else 0
        if not is_int:
            raise ConfigurationError(f"{source}: topic_partitions must be a positive integer, got {raw!r}")
        if value < 1:
            raise ConfigurationError(f"{source}: topic_partitions must be at least 1, got {value}")
        return value
    if name.startswith("webhook_"):
        try:
            number = float(raw) if not isinstance(raw, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or not 0.1 <= number <= 30 * 86_400:
            raise ConfigurationError(f"{source}: {name} must be seconds from 0.1 to 2592000, got {raw!r}")
        return number
    if name == "kafka_idempotent":
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered not in _BOOL:
            raise ConfigurationError(f"{source}: kafka_idempotent must be true or false, got {raw!r}")
        return _BOOL[lowered]
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigurationError(f"{source}: {name} must be a non-empty string, got {raw!r}")
    if name in ("temporal_address", "kafka_bootstrap"):
        return _check_addresses(raw.strip(), source)
    if name == "database_url":
        return check_database_url(raw.strip(), source)
    if name == "documents_lang" and raw.strip() not in ("zh-CN", "en"):
        raise ConfigurationError(f"{source}: documents_lang must be zh-CN or en, got {raw!r}")
    return raw.strip()


def load_settings(env: dict[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Resolve the settings.

    Args:
        env: environment mapping (defaults to ``os.environ``).
        config_file: TOML file to read (defaults to ``DUBAN_CONFIG`` or ``./duban.toml`` if it exists);
            its keys are the setting names of the table in this module's docstring, at top level.

    Raises:
        ConfigurationError: unknown key in the file, unreadable file, or a value of the wrong type.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    names = {f.name for f in fields(Settings)}
    path = config_file or (Path(env["DUBAN_CONFIG"]) if env.get("DUBAN_CONFIG") else None)
    if path is None and Path("duban.toml").is_file():
        path = Path("duban.toml")
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"config file {path}: {exc}") from exc
        for key, raw in data.items():
            if key not in names:
                raise ConfigurationError(f"config file {path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, f"config file {path}")
    for name in names:
        var = f"DUBAN_{name.upper()}"
        if env.get(var, "") != "":
            values[name] = _coerce(name, env[var], var)
    return replace(Settings(), **values)
