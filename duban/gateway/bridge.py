"""The command topic bridge: ``duban.commands`` → the items → ``duban.command-results``.

A faust-streaming agent (concurrency 1, in-memory tables: ENGINEERING.md's notes on faust) reads
the command envelopes (``duban.gateway.envelopes``) in batches; within a batch the commands of
different items run side by side and those of one item (one key: the item id) one after the other,
in the order they were published (``lanes``). Each message goes through ``handle_message``:

* checks the signature against the key named by ``key_id`` (unknown, revoked or mis-signed → dead
  letter), parses the envelope strictly (→ dead letter with the field and reason), checks the key's
  scope (→ dead letter);
* applies the command through the same use cases as the HTTP API: with a ``registration``, one
  Temporal update-with-start creates the item if needed;
* publishes the outcome — applied, or refused with the rules' reason — to ``duban.command-results``
  keyed by the command id.

Delivery is at least once: a batch is acknowledged (its offsets may be committed) only after every
outcome in it is published, and a command redelivered after a crash is applied once (the item
dedupes by command id). Temporal or the database
not answering is retried with backoff (0.5 s doubling to 30 s) without moving on, so order holds; an
unexpected error on one message dead-letters it after three tries, and the bridge keeps going.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
import structlog
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError, RPCStatusCode

from duban import services
from duban.gateway import items
from duban.gateway.bridge_watch import RunningBridge
from duban.gateway.context import Gateway
from duban.gateway.envelopes import parse_envelope, signature_of
from duban.gateway.keys import KeyRefused, OutOfScope
from events.errors import DubanError, ValidationError
from events.topics import create_missing_topics

log = structlog.get_logger("duban.bridge")
RESULT_SCHEMA = "duban.command-result/1"
TRANSIENT_RPC = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
MAX_BACKOFF_S = 30.0
UNEXPECTED_TRIES = 3


@dataclass(frozen=True)
class Delivery:
    """Where a message's outcome goes: ``"result"`` or ``"dead_letter"``, with its key and value."""

    to: str
    key: bytes
    value: bytes


def _now() -> str:
    return datetime.now(UTC).isoformat()


RAW_KEPT = 64 * 1024
"""A dead letter carries the original bytes up to this size; a larger message's letter carries its
size, SHA-256 and first KiB (the whole would not fit in a Kafka message beside its reason)."""


def dead_letter(raw: bytes, key: bytes | None, field: str, reason: str, where: dict[str, Any]) -> Delivery:
    """A dead letter: the reason, the original bytes (base64; see ``RAW_KEPT``), where it was read."""
    body: dict[str, Any] = {"field": field, "reason": reason, "at": _now(), "size": len(raw)}
    if len(raw) <= RAW_KEPT:
        body["raw"] = base64.b64encode(raw).decode()
    else:
        head = base64.b64encode(raw[:1024]).decode()
        body |= {"raw": "", "raw_head": head, "raw_sha256": hashlib.sha256(raw).hexdigest()}
    return Delivery("dead_letter", (key or b"")[:256], json.dumps(body | where, ensure_ascii=False).encode())


def _result(command_id: str, item_id: str, integrator: str, **fields: Any) -> Delivery:
    body = {"schema": RESULT_SCHEMA, "command_id": command_id, "item_id": item_id, "integrator": integrator}
    value = json.dumps(body | fields | {"at": _now()}, ensure_ascii=False).encode()
    return Delivery("result", command_id.encode(), value)


async def handle_message(gw: Gateway, raw: bytes, key: bytes | None, where: dict[str, Any]) -> Delivery:
    """The delivery for one message of the commands topic (see the module docstring). Raises only
    what is transient or unexpected (the caller retries)."""
    try:
        data, envelope = parse_envelope(raw)
    except ValidationError as exc:
        return dead_letter(raw, key, exc.field, exc.reason, where)
    try:
        integrator_key, secret = gw.keys.signing_key(envelope.key_id)
    except KeyRefused as exc:
        return dead_letter(raw, key, "key_id", str(exc), where)
    if not hmac.compare_digest(signature_of(data, secret), envelope.signature):
        return dead_letter(raw, key, "signature", "does not match the canonical body under the key", where)
    if key != envelope.item_id.encode():
        return dead_letter(
            raw, key, "key", "the message key must be the item id (it keeps items in order)", where
        )
    command = envelope.command
    structlog.contextvars.bind_contextvars(item_id=envelope.item_id, command_id=command.command_id)
    try:
        if envelope.registration is not None:
            outcome = await items.apply_with_start(gw, integrator_key, envelope.registration, command)
        else:
            outcome = await items.apply(gw, integrator_key, envelope.item_id, command)
    except OutOfScope as exc:
        return dead_letter(raw, key, exc.field, str(exc), where)
    except ValidationError as exc:
        return dead_letter(raw, key, exc.field, exc.reason, where)
    except services.CommandRefused as exc:
        return _result(
            command.command_id,
            envelope.item_id,
            integrator_key.integrator,
            applied=False,
            error=exc.kind,
            reason=exc.reason,
            event_types=[],
        )
    except (items.ItemNotFound, items.ItemConflict) as exc:
        return _result(
            command.command_id,
            envelope.item_id,
            integrator_key.integrator,
            applied=False,
            error=type(exc).__name__,
            reason=str(exc),
            event_types=[],
        )
    return _result(
        command.command_id,
        envelope.item_id,
        integrator_key.integrator,
        applied=outcome.applied,
        error="",
        reason=outcome.reason,
        event_types=outcome.event_types,
    )


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` means a service did not answer (retry the same message) rather than a fault."""
    if isinstance(exc, RPCError):
        return exc.status in TRANSIENT_RPC
    return isinstance(exc, (OSError, OperationalError, asyncio.TimeoutError)) or (
        isinstance(exc, RuntimeError) and "connect" in str(exc).lower()
    )


async def deliver_with_retry(
    handle: Callable[[], Awaitable[Delivery]],
    fallback: Callable[[str], Delivery],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Delivery:
    """``handle()``, retried with backoff while it fails transiently; after ``UNEXPECTED_TRIES``
    unexpected failures the message is dead-lettered by ``fallback(reason)``."""
    delay, unexpected = 0.5, 0
    while True:
        try:
            return await handle()
        except DubanError as exc:  # an expected refusal that the handler did not map: dead letter
            return fallback(f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            if not transient(exc):
                unexpected += 1
                log.warning("bridge.unexpected_error", error=repr(exc), attempt=unexpected)
                if unexpected >= UNEXPECTED_TRIES:
                    return fallback(f"internal error: {type(exc).__name__}: {str(exc)[:500]}")
            else:
                log.warning("bridge.service_unavailable", error=repr(exc)[:300], retry_in_s=delay)
            await sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


async def process(gw: Gateway, raw: bytes, key: bytes | None, where: dict[str, Any]) -> Delivery:
    """The delivery of one message: ``handle_message`` under ``deliver_with_retry``."""
    return await deliver_with_retry(
        partial(handle_message, gw, raw, key, where), partial(dead_letter, raw, key, "", where=where)
    )


@dataclass(frozen=True)
class BridgeOptions:
    """``app_id`` is the faust app and its consumer group. ``session_timeout_s``: how long the
    broker waits for a silent member before it rebalances (heartbeats every third of it); it also
    bounds the start on Tansu, whose first JoinGroup of a faust member fails and is retried after
    about half of it (measured: 60 s → 30 s start, 4 s → 3 s, 2 s → 2 s). ``batch`` messages at most
    are taken at once, waiting at most ``batch_wait_s`` seconds for them (see ``lanes``)."""

    app_id: str = "duban-bridge"
    session_timeout_s: float = 10.0
    batch: int = 200
    batch_wait_s: float = 0.02


def lanes(events: Sequence[Any]) -> list[list[Any]]:
    """``events`` of one batch split into lanes that may run side by side: the events of one
    (partition, key) — one item — stay in one lane in their order; an event without a key is a lane
    of its own. The faust stream acknowledges a batch only after every lane is done, so a crash
    redelivers what was not finished (at least once) and an item's commands never overtake."""
    by_key: dict[tuple[int, bytes], list[Any]] = {}
    out: list[list[Any]] = []
    for event in events:
        key = event.key if isinstance(event.key, bytes) else None
        if key is None:
            out.append([event])
            continue
        lane = by_key.setdefault((event.message.partition, key), [])
        if not lane:
            out.append(lane)
        lane.append(event)
    return out


async def deliver_in_order(lane: list[Any], deliver: Callable[[Any], Awaitable[None]]) -> None:
    """``deliver`` each event of ``lane``, one after the other."""
    for event in lane:
        await deliver(event)


async def publish_until_sent(target: Any, delivery: Delivery, gw: Gateway) -> None:
    """Publish ``delivery`` to ``target`` (a faust topic), retrying with backoff (0.5 s doubling to
    30 s) until the broker takes it, recreating the bridge's topics after a failure (a broker that
    restarted empty has lost them). It never gives up: a batch is acknowledged only once every
    outcome in it is published, so an outcome the broker did not take is never lost."""
    delay = 0.5
    while True:
        try:
            await (await target.send(key=delivery.key, value=delivery.value))
            return
        except Exception as exc:  # the broker refused or did not answer: keep the batch unacknowledged
            log.warning("bridge.publish_failed", error=repr(exc)[:300], retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            s = gw.settings
            with contextlib.suppress(Exception):
                names = (s.commands_topic, s.command_results_topic, s.commands_dead_letter_topic)
                await create_missing_topics(s.kafka_target, names, s.topic_partitions)


def build_bridge(
    gw: Gateway, options: BridgeOptions = BridgeOptions(), running: RunningBridge | None = None
) -> faust.App:
    """The faust app of the bridge on ``gw`` (its settings name the broker and the three topics);
    ``await app.start()`` runs it in the current event loop, ``await app.stop()`` stops it. Each
    delivered message is noted on ``running`` (its watch: ``duban.gateway.bridge_watch``)."""
    settings = gw.settings
    app = faust.App(
        options.app_id,
        broker=f"kafka://{settings.kafka_target.split(',')[0]}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        broker_session_timeout=options.session_timeout_s,
        broker_heartbeat_interval=options.session_timeout_s / 3,
        broker_rebalance_timeout=max(options.session_timeout_s, 3.0),
    )
    commands = app.topic(settings.commands_topic, key_serializer="raw", value_serializer="raw")
    results = app.topic(settings.command_results_topic, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(
        settings.commands_dead_letter_topic, key_serializer="raw", value_serializer="raw"
    )

    async def deliver(event: Any) -> None:
        raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        key = event.key if isinstance(event.key, bytes) else None
        where = {
            "topic": event.message.topic,
            "partition": event.message.partition,
            "offset": event.message.offset,
        }
        delivery = await process(gw, raw, key, where)
        target = results if delivery.to == "result" else dead_letters
        await publish_until_sent(target, delivery, gw)  # before the batch is acknowledged: at least once
        if running is not None:
            running.note_delivered(where["partition"], where["offset"])
        log.info("bridge.delivered", to=delivery.to, offset=where["offset"], partition=where["partition"])

    @app.agent(commands, concurrency=1)
    async def bridge(stream: Any) -> None:
        async for events in stream.take_events(options.batch, within=options.batch_wait_s):
            idle.clear()  # stop_bridge waits for the batch in hand: it is acknowledged when it ends
            try:
                await asyncio.gather(*(deliver_in_order(lane, deliver) for lane in lanes(events)))
            finally:
                idle.set()

    idle = asyncio.Event()
    idle.set()
    app.duban_idle = idle  # type: ignore[attr-defined]
    return app


async def stop_app(app: faust.App, timeout_s: float = 60.0) -> None:
    """Stop the faust ``app`` once the batch in hand (if any) is done, waiting at most ``timeout_s``:
    faust acknowledges a batch when its processing ends, even by cancellation, so stopping mid-batch
    could commit past commands whose outcome was not yet published. A process killed outright commits
    nothing of the batch in hand, which is then delivered again (and applied once)."""
    idle: asyncio.Event | None = getattr(app, "duban_idle", None)
    if idle is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), timeout_s)
    await app.stop()


async def stop_bridge(running: RunningBridge) -> None:
    """Stop the bridge started by ``start_bridge`` (its watch, then its app as ``stop_app`` does)."""
    await running.stop()


async def start_bridge(gw: Gateway, options: BridgeOptions = BridgeOptions()) -> RunningBridge:
    """Create the three topics if missing, then build and start the bridge, watched for a recreated
    commands topic (``duban.gateway.bridge_watch``); ``stop_bridge`` stops it.

    Raises:
        TopicsUnavailable: the broker cannot be reached or refuses to create them.
    """
    s = gw.settings
    names = (s.commands_topic, s.command_results_topic, s.commands_dead_letter_topic)
    await create_missing_topics(s.kafka_target, names, s.topic_partitions)

    async def start_app(running: RunningBridge) -> faust.App:
        app = build_bridge(gw, options, running)
        await app.start()
        log.info("bridge.started", topic=s.commands_topic, group=options.app_id)
        return app

    running = RunningBridge(start_app, stop_app)
    await running.start(
        s.kafka_target,
        s.commands_topic,
        lambda: create_missing_topics(s.kafka_target, names, s.topic_partitions),
    )
    return running
