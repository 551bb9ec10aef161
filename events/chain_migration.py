"""Chaining the events stored before chains existed (``duban audit chain-migrate``).

``migrate_chains`` chains them stream by stream, in sequence order (``events.chain``); it refuses a
store where a stream holds both chained and unchained events: chains came for whole streams, so
such a stream has had chain values removed, which ``events.log_audit.verify_log`` reports.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, inspect, select, update

from events.chain import genesis, link
from events.errors import DubanError
from events.store import stored_events

_c = stored_events.c


class MixedStreams(DubanError):
    """``migrate_chains`` refuses a store where a stream holds chained and unchained events: only
    events stored before chains existed are chained by it, and chains came for whole streams —
    such a stream has had chain values removed (``duban audit verify-log`` names the events)."""


def _refuse_mixed(conn: Any) -> list[str]:
    """The streams holding unchained events (to migrate), after refusing a store where a stream
    holds chained events too (``MixedStreams``)."""
    unchained = select(_c.item_id).where(_c.chain.is_(None)).distinct().subquery()
    mixed = conn.execute(
        select(_c.item_id, func.count())
        .where(_c.chain.is_not(None), _c.item_id.in_(select(unchained.c.item_id)))
        .group_by(_c.item_id)
        .order_by(_c.item_id)
    ).all()
    if mixed:
        names = ", ".join(f"{item} ({count} chained)" for item, count in mixed[:5])
        raise MixedStreams(
            f"chain-migrate refuses to re-chain {len(mixed)} stream(s) that already hold chained "
            f"events as well as unchained ones: {names}{' …' if len(mixed) > 5 else ''}; only events "
            "stored before chains existed can be migrated, so chain values were removed from these "
            "streams (run duban audit verify-log); nothing was changed"
        )
    return [r[0] for r in conn.execute(select(unchained.c.item_id).order_by(unchained.c.item_id))]


def check_migratable(engine: Engine) -> None:
    """Refuse, before anything is written, a store ``migrate_chains`` would refuse (nothing to
    check in a database without an event store or without the ``chain`` column: nothing is
    chained there).

    Raises:
        MixedStreams: a stream holds chained events as well as unchained ones.
    """
    found = inspect(engine)
    if not found.has_table(stored_events.name):
        return
    if "chain" not in {column["name"] for column in found.get_columns(stored_events.name)}:
        return
    with engine.connect() as conn:
        _refuse_mixed(conn)


def migrate_chains(engine: Engine, batch: int = 5000) -> int:
    """Chain the events stored before chains existed, stream by stream in sequence order (an
    event's chain follows from its stream's previous one); how many were chained. Idempotent.

    Raises:
        MixedStreams: a stream already holds chained events as well as unchained ones (nothing is
            changed).
    """
    done = 0
    with engine.begin() as conn:
        streams = _refuse_mixed(conn)
    for start in range(0, len(streams), batch):
        part = streams[start : start + batch]
        with engine.begin() as conn:
            rows = conn.execute(
                select(_c.position, _c.item_id, _c.sequence, _c.digest, _c.chain)
                .where(_c.item_id.in_(part))
                .order_by(_c.item_id, _c.sequence)
            ).all()
            chain, stream, updates = "", None, []
            for row in rows:
                if row.item_id != stream:
                    stream, chain = row.item_id, genesis(row.item_id)
                value = row.chain or link(chain, row.digest)
                if row.chain is None:
                    updates.append({"p": row.position, "chain": value})
                chain = value
            for update_row in updates:
                conn.execute(
                    update(stored_events)
                    .where(_c.position == update_row["p"])
                    .values(chain=update_row["chain"])
                )
            done += len(updates)
    return done
