"""duban's data converter decodes every payload into what the SDK's default converter gives, and
encodes every object to the same bytes (``workflows.payload_converter``): a worker with it and a
worker without it decide identically.

Differential: every JSON payload of the golden histories (real runs: workflow inputs, commands,
activity inputs and results, local-activity markers) is decoded as each of duban's payload
dataclasses by both converters, then again with each of its fields replaced by a value of the
wrong kind, a null, or removed; both must give equal objects, or both fail with the same error.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import pkgutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadConverter

import workflows
from events.envelope import EventEnvelope
from workflows.payload_converter import DATA_CONVERTER

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
JSON_PLAIN = base64.b64encode(b"json/plain").decode()


def payload_dataclasses() -> list[type]:
    """Every dataclass defined in a ``workflows`` module, and the event envelope."""
    found: dict[str, type] = {"EventEnvelope": EventEnvelope}
    for info in pkgutil.iter_modules(workflows.__path__):
        module = importlib.import_module(f"workflows.{info.name}")
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = value
    return list(found.values())


def history_payloads() -> Iterator[dict[str, Any]]:
    """The JSON objects carried by the golden histories' ``json/plain`` payloads."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("metadata", {}).get("encoding") == JSON_PLAIN and "data" in node:
                value = json.loads(base64.b64decode(node["data"]))
                if isinstance(value, dict):
                    yield value
            for child in node.values():
                yield from walk(child)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)

    seen: set[str] = set()
    for path in HISTORIES:
        for value in walk(json.loads(path.read_text())):
            text = json.dumps(value, sort_keys=True)
            if text not in seen:  # each distinct payload once
                seen.add(text)
                yield value


def outcome(converter: PayloadConverter, value: Any, hint: type) -> tuple[str, Any]:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())
    try:
        return "ok", converter.from_payloads([payload], [hint])[0]
    except Exception as exc:  # the kind of failure must match too
        return "error", (type(exc).__name__, str(exc), type(exc.__cause__).__name__)


def encoded(converter: PayloadConverter, value: Any) -> Any:
    try:
        return converter.to_payloads([value])
    except Exception as exc:
        return type(exc).__name__, str(exc)


def variants(value: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``value``, then with each field wrong: another kind, null, removed; and with an unknown key."""
    yield value
    yield {**value, "not_a_field": 1}
    for key, field_value in value.items():
        wrong = "text" if not isinstance(field_value, str) else 12
        yield {**value, key: wrong}
        yield {**value, key: None}
        yield {k: v for k, v in value.items() if k != key}
        if isinstance(field_value, list) and field_value and isinstance(field_value[0], dict):
            first = field_value[0]
            for inner in first:
                yield {**value, key: [{**first, inner: 12}, *field_value[1:]]}


def test_the_histories_carry_the_payloads_of_every_kind_of_step() -> None:
    keys = [frozenset(p) for p in history_payloads()]
    assert any({"registration", "initial_commands"} <= k for k in keys)  # item inputs
    assert any({"events"} <= k for k in keys)  # recordings
    assert any({"command_id", "kind", "actor"} <= k for k in keys)  # commands


@pytest.mark.parametrize("hint", payload_dataclasses(), ids=lambda tp: tp.__qualname__)
def test_every_history_payload_decodes_as_with_the_default_converter(hint: type) -> None:
    default = DataConverter.default.payload_converter
    duban = DATA_CONVERTER.payload_converter
    compared = decoded = 0
    for value in history_payloads():
        for variant in variants(value):
            expected = outcome(default, variant, hint)
            assert outcome(duban, variant, hint) == expected, (hint, variant)
            compared += 1
            decoded += expected[0] == "ok"
            if expected[0] == "ok":  # and encodes back to the same bytes (or fails alike)
                assert encoded(duban, expected[1]) == encoded(default, expected[1])
    assert compared > 1000


@dataclasses.dataclass
class _Inner:
    at: datetime


@dataclasses.dataclass
class _Mapping(dict[str, Any]):  # the SDK's mapping branch decodes it, not the dataclass one
    name: str = ""


@dataclasses.dataclass
class _Shapes:
    maybe: _Inner | None
    either: int | _Inner
    many: list[_Inner]
    by_key: dict[str, _Inner]
    mapping: _Mapping
    hidden: int = dataclasses.field(default=0, init=False)


@pytest.mark.parametrize(
    "value",
    [
        {"maybe": None, "either": 3, "many": [], "by_key": {}, "mapping": {"name": "x", "extra": 1},
         "hidden": 5},
        {"maybe": {"at": "2025-01-01T00:00:00+08:00"}, "either": {"at": "2025-01-01T00:00:00Z"},
         "many": [{"at": "2025-01-01T00:00:00+00:00"}], "by_key": {"k": {"at": "2025-01-01T00:00:00+00:00"}},
         "mapping": {}},
        {"maybe": {"at": 5}, "either": "x", "many": [{}], "by_key": {"k": 1}, "mapping": []},
    ],
)  # fmt: skip
def test_shapes_duban_does_not_use_yet_decode_as_with_the_default_converter(value: dict[str, Any]) -> None:
    """Optional, union, list and dict members, ``init=False`` fields, a dataclass that is a mapping."""
    default = DataConverter.default.payload_converter
    duban = DATA_CONVERTER.payload_converter
    for variant in variants(value):
        expected = outcome(default, variant, _Shapes)
        assert outcome(duban, variant, _Shapes) == expected, variant
        if expected[0] == "ok":
            assert encoded(duban, expected[1]) == encoded(default, expected[1])
