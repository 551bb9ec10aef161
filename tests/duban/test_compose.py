"""Static checks of the production deployment: docker-compose.yml, Dockerfile and .dockerignore.

No Docker engine runs where the tests run, so nothing is started: the compose file is parsed with
PyYAML, ``${VAR}`` references are interpolated the way Compose does it (with test secrets), and its
structure is checked against what duban needs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from helpers.paths import REPO as ROOT

from duban.config import load_settings
from workflows.search_attributes import ALL_KEYS

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Secrets the compose file requires (``${VAR:?...}``), as an operator's .env would give them.
TEST_ENV = {"TEMPORAL_DB_PASSWORD": "temporal-secret", "DUBAN_DB_PASSWORD": "duban-secret"}

# duban's containers and the command line each runs (image ENTRYPOINT + compose command).
DUBAN_SERVICES = {
    "duban-worker": ["duban", "worker", "--status-host", "0.0.0.0", "--status-port", "9100"],
    "duban-projector": ["duban", "project", "--status-host", "0.0.0.0", "--status-port", "9100"],
    "duban-gateway": ["duban", "serve", "--host", "0.0.0.0", "--port", "8080", "--no-bridge"],
    "duban-bridge": ["duban", "bridge", "--status-host", "0.0.0.0", "--status-port", "9100"],
    "duban-cli": ["duban", "--help"],
}
REQUIRED_SERVICES = {
    "postgresql",
    "temporal",
    "temporal-admin-tools",
    "temporal-ui",
    "kafka",
    "kafka-init",
    *DUBAN_SERVICES,
}
ONE_SHOT_SERVICES = {"temporal-admin-tools", "kafka-init"}

# Every DUBAN_* variable each duban container must have; None: checked separately (the URL).
DUBAN_ENV: dict[str, str | None] = {
    "DUBAN_TEMPORAL_ADDRESS": "temporal:7233",
    "DUBAN_TEMPORAL_NAMESPACE": "default",
    "DUBAN_KAFKA_BOOTSTRAP": "kafka:9092",
    "DUBAN_KAFKA_IDEMPOTENT": "true",
    "DUBAN_DATABASE_URL": None,
    "DUBAN_DATA_DIR": "/var/lib/duban",
}

SEARCH_ATTRIBUTES = {
    "DubanDepartment": "Keyword",
    "DubanTown": "Keyword",
    "DubanCommunity": "Keyword",
    "DubanCategory": "Keyword",
    "DubanStage": "Keyword",
    "DubanDeadline": "Datetime",
    "DubanOverdue": "Bool",
    "DubanEscalationLevel": "Int",
    "DubanLight": "Keyword",
    "DubanOrder": "Keyword",
}
TOPICS = (
    "duban.item-events",
    "duban.item-events.dlq",
    "duban.commands",
    "duban.command-results",
    "duban.commands.dlq",
)


# --- Compose-style interpolation ------------------------------------------------------------------

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariableError(LookupError):
    """A ``${VAR:?message}`` reference whose variable is unset (Compose refuses to start)."""


def _interpolate_text(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op is not None and op.endswith("-"):
            return arg if unset else str(value)
        if op is not None and op.endswith("?"):
            if unset:
                raise MissingVariableError(f"{name}: {arg}")
            return str(value)
        return value or ""

    return _REFERENCE.sub(substitute, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string of a parsed compose document, as Compose does before using it."""
    if isinstance(node, str):
        return _interpolate_text(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


# --- Helpers ------------------------------------------------------------------------------------


def _as_mapping(env: Any) -> dict[str, str]:
    """A service's ``environment`` (mapping or list of KEY=VALUE) as a dict of strings."""
    if env is None:
        return {}
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)


def _argv(value: Any) -> list[str]:
    """A compose ``command``/``entrypoint`` (string or list) as an argument list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _command_text(service: Mapping[str, Any]) -> str:
    """The whole command line of a one-shot service, entrypoint included, as one string."""
    return " ".join(_argv(service.get("entrypoint")) + _argv(service.get("command")))


def _host(address: str) -> str:
    """The host of ``host:port`` (or of the first of a comma-separated list of them)."""
    host = urlsplit(f"//{address.split(',')[0].strip()}").hostname
    assert host, f"no host in {address!r}"
    return host


def _depends_on(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {} for name in deps}
    return {name: spec or {} for name, spec in deps.items()}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def _dockerfile_entrypoint() -> list[str]:
    entrypoints = [args for instr, args in _dockerfile_instructions() if instr == "ENTRYPOINT"]
    assert entrypoints, "the Dockerfile has no ENTRYPOINT"
    value = json.loads(entrypoints[-1])  # exec form: ["duban"]
    assert isinstance(value, list)
    return [str(v) for v in value]


# --- Fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """docker-compose.yml as written (before interpolation)."""
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """docker-compose.yml as Compose sees it, with the test secrets in the environment."""
    return interpolate(raw, TEST_ENV)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# --- The services and how they depend on one another ---------------------------------------------


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = REQUIRED_SERVICES - services.keys()
    assert not missing, f"missing services: {sorted(missing)}"


def test_every_dependency_exists_and_has_a_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, spec in _depends_on(service).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            condition = spec.get("condition")
            assert condition in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} -> {target}: condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy"
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT_SERVICES, f"{name} waits for long-running {target} to exit"


def test_one_shot_jobs_are_not_restarted(services: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOT_SERVICES:
        assert services[name].get("restart", "no") == "no", name


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither an image nor a build"
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"


def test_published_ports_are_unique(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # long syntax
                published, protocol = str(port.get("published", "")), port.get("protocol", "tcp")
            else:  # [ip:][host:]container[/protocol]
                spec, _, protocol = str(port).partition("/")
                parts = spec.rsplit(":", 2)
                published = parts[-2] if len(parts) >= 2 else ""
            if not published:
                continue  # an ephemeral host port cannot clash
            key = (published, protocol or "tcp")
            assert key not in seen, f"host port {published} published by {seen.get(key)} and {name}"
            seen[key] = name


def test_named_volumes_and_configs_are_declared(compose: dict[str, Any]) -> None:
    declared_volumes = set(compose.get("volumes") or {})
    declared_configs = set(compose.get("configs") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):  # long syntax
                source = volume.get("source") if volume.get("type") == "volume" else None
            else:  # source:target[:mode], where a path source is a bind mount
                parts = volume.split(":")
                source = parts[0] if len(parts) > 1 and not parts[0].startswith(("/", ".", "~")) else None
            if source:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"
        for config in service.get("configs", []):
            source = config["source"] if isinstance(config, dict) else config
            assert source in declared_configs, f"{name} uses undeclared config {source}"


# --- PostgreSQL and Temporal ------------------------------------------------------------------------


def test_postgresql(services: dict[str, dict[str, Any]], compose: dict[str, Any]) -> None:
    pg = services["postgresql"]
    assert pg["image"].startswith("postgres:16"), pg["image"]
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in pg["volumes"]), "no data volume"
    assert "pg_isready" in " ".join(_argv(pg["healthcheck"]["test"]))
    # duban's role and database are created at first start; the password comes from the environment.
    init = compose["configs"][pg["configs"][0]["source"]]["content"]
    assert "CREATE ROLE duban" in init and "CREATE DATABASE duban OWNER duban" in init
    assert _as_mapping(pg["environment"])["DUBAN_DB_PASSWORD"] == TEST_ENV["DUBAN_DB_PASSWORD"]


def test_temporal_uses_postgresql(services: dict[str, dict[str, Any]]) -> None:
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    env = _as_mapping(temporal["environment"])
    pg_env = _as_mapping(services["postgresql"]["environment"])
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql" and "postgresql" in services
    assert env["DB_PORT"] == "5432"
    assert env["POSTGRES_USER"] == pg_env["POSTGRES_USER"]
    assert env["POSTGRES_PWD"] == pg_env["POSTGRES_PASSWORD"]
    assert _depends_on(temporal)["postgresql"]["condition"] == "service_healthy"


def test_temporal_ui(services: dict[str, dict[str, Any]]) -> None:
    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert _as_mapping(ui["environment"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert any(str(p).endswith("8233:8080") for p in ui["ports"])


def test_search_attributes_are_registered(services: dict[str, dict[str, Any]]) -> None:
    admin = services["temporal-admin-tools"]
    assert admin["image"].startswith("temporalio/admin-tools:")
    script = _command_text(admin)
    assert "temporal operator search-attribute create" in script
    env = _as_mapping(admin["environment"])
    assert _host(env["TEMPORAL_ADDRESS"]) in services
    assert env["NAMESPACE"] == DUBAN_ENV["DUBAN_TEMPORAL_NAMESPACE"]
    for name, type_ in SEARCH_ATTRIBUTES.items():
        assert re.search(rf"\b{name}\s+{type_}\b", script), f"{name} ({type_}) is not registered"


def test_registered_attributes_are_those_the_workflows_use() -> None:
    used = {key.name: key.indexed_value_type.name.capitalize() for key in ALL_KEYS}
    assert used == SEARCH_ATTRIBUTES


# --- Kafka ----------------------------------------------------------------------------------------


def test_kafka_runs_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _as_mapping(kafka["environment"])
    assert {"broker", "controller"} <= set(env["KAFKA_PROCESS_ROLES"].split(","))
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert f"{env['KAFKA_NODE_ID']}@kafka:9093" in voters
    assert not any("ZOOKEEPER" in key for key in env)
    assert not any("zookeeper" in f"{name} {svc.get('image', '')}" for name, svc in services.items())
    assert any(":/var/lib/kafka/data" in str(v) for v in kafka["volumes"])
    assert "healthcheck" in kafka
    # Containers reach the broker at the address it advertises to them.
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT://{DUBAN_ENV['DUBAN_KAFKA_BOOTSTRAP']}" in advertised


def test_kafka_init_creates_the_topics(services: dict[str, dict[str, Any]]) -> None:
    init = services["kafka-init"]
    script = _command_text(init)
    assert "kafka-topics.sh" in script and "--create" in script and "--if-not-exists" in script
    assert "--partitions 3" in script
    for topic in TOPICS:
        assert topic in script
    assert _depends_on(init)["kafka"]["condition"] == "service_healthy"


# --- duban's own services -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DUBAN_SERVICES))
def test_duban_service_image_and_command(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    build = service["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert context in {".", "./"}, f"{name} builds from {context!r}"
    entrypoint = _argv(service.get("entrypoint")) or _dockerfile_entrypoint()
    assert entrypoint + _argv(service.get("command")) == DUBAN_SERVICES[name]


def test_duban_cli_is_a_tool(services: dict[str, dict[str, Any]]) -> None:
    assert services["duban-cli"].get("profiles") == ["tools"]
    for name in ("duban-worker", "duban-projector", "duban-gateway", "duban-bridge"):
        assert not services[name].get("profiles"), f"{name} must start with a plain `up`"


def test_every_long_running_duban_process_is_scraped_and_checked(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    scraped = compose["configs"]["prometheus-duban"]["content"]
    for name in ("duban-worker", "duban-projector", "duban-bridge"):
        argv = _argv(services[name]["command"])
        port = argv[argv.index("--status-port") + 1]
        assert f"{name}:{port}" in scraped, name
        assert f":{port}/readyz" in " ".join(services[name]["healthcheck"]["test"]), name
    assert "duban-gateway:8080" in scraped
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]


def test_the_gateway_is_published_on_loopback_and_checked_for_readiness(
    services: dict[str, dict[str, Any]],
) -> None:
    gateway = services["duban-gateway"]
    assert gateway["ports"] == ["127.0.0.1:8080:8080"]
    probe = " ".join(gateway["healthcheck"]["test"])
    assert "/readyz" in probe and ":8080" in probe
    settings = load_settings(env=_as_mapping(gateway["environment"]))
    names = (settings.commands_topic, settings.command_results_topic, settings.commands_dead_letter_topic)
    assert set(names) <= set(TOPICS)


@pytest.mark.parametrize("name", sorted(DUBAN_SERVICES))
def test_duban_service_environment(
    services: dict[str, dict[str, Any]], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _as_mapping(services[name]["environment"])
    for var, expected in DUBAN_ENV.items():
        assert var in env, f"{name} lacks {var}"
        if expected is not None:
            assert env[var] == expected, f"{name}: {var}={env[var]!r}"
    # Every address names a service of this file.
    assert _host(env["DUBAN_TEMPORAL_ADDRESS"]) in services
    for server in env["DUBAN_KAFKA_BOOTSTRAP"].split(","):
        assert _host(server) in services
    url = urlsplit(env["DUBAN_DATABASE_URL"])
    assert url.scheme == "postgresql+psycopg"
    assert url.hostname in services and url.hostname == "postgresql"
    assert url.port == 5432
    assert (url.username, url.password, url.path) == ("duban", TEST_ENV["DUBAN_DB_PASSWORD"], "/duban")
    # ... and duban itself accepts them, as external services (nothing embedded).
    monkeypatch.chdir(tmp_path)  # no stray ./duban.toml
    settings = load_settings(env=env)
    assert not settings.temporal_embedded and not settings.kafka_embedded
    assert settings.kafka_idempotence is True
    assert settings.database == env["DUBAN_DATABASE_URL"]


def test_duban_services_wait_for_what_they_use(services: dict[str, dict[str, Any]]) -> None:
    needs = {
        "duban-worker": {"postgresql", "temporal-admin-tools", "kafka-init"},
        "duban-projector": {"postgresql", "kafka-init"},
        "duban-gateway": {"postgresql", "temporal-admin-tools", "kafka-init"},
        "duban-bridge": {"postgresql", "temporal-admin-tools", "kafka-init"},
        "duban-cli": {"postgresql", "temporal-admin-tools", "kafka-init"},
    }
    for name, targets in needs.items():
        assert targets <= _depends_on(services[name]).keys(), name


def test_duban_env_is_shared_through_an_anchor(raw: dict[str, Any]) -> None:
    anchor = raw["x-duban-env"]
    assert set(DUBAN_ENV) <= set(anchor)
    for name in DUBAN_SERVICES:
        assert raw["services"][name]["environment"] is anchor, f"{name} does not use x-duban-env"


def test_secrets_come_from_the_environment(raw: dict[str, Any]) -> None:
    url = raw["x-duban-env"]["DUBAN_DATABASE_URL"]
    assert "${DUBAN_DB_PASSWORD" in url, "the database password is written into the file"
    with pytest.raises(MissingVariableError):
        interpolate(raw, {})


# --- Dockerfile and .dockerignore -----------------------------------------------------------------


def test_dockerfile_installs_the_project_and_runs_duban() -> None:
    instructions = _dockerfile_instructions()
    bases = [args for instr, args in instructions if instr == "FROM"]
    assert bases and bases[-1].split()[0] == "python:3.11-slim"
    runs = " ".join(args for instr, args in instructions if instr == "RUN")
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", runs), "the project is not pip-installed"
    assert any(instr == "COPY" and args.split()[0] == "." for instr, args in instructions)
    users = [args for instr, args in instructions if instr == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image runs as root"
    assert _dockerfile_entrypoint() == ["duban"]


def test_dockerignore_keeps_what_the_install_needs() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert {".git", ".env"} <= set(patterns)
    needed = ["pyproject.toml", "README.md", "duban", "workflows", "activities", "events", "projections"]
    for path in needed:
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(path, p.rstrip("/"))]
        assert not hits, f".dockerignore drops {path} ({hits})"
