"""Produced documents kept in the database (``documents``): each with the SHA-256 of its bytes, the
events hash of the period's snapshot it was built from (empty for a provisional one), and when it
was made. A closed period's scheduled documents are produced once per format and language; making
one again adds a row (the newest is listed first), so nothing is overwritten."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
)

from events.sql import UTCDateTime, create_schema

metadata = MetaData()
documents = Table(
    "documents",
    metadata,
    Column("document_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("period", String(32), nullable=False, index=True),
    Column("lang", String(8), nullable=False),
    Column("format", String(8), nullable=False),
    Column("provisional", Boolean, nullable=False),
    Column("events_hash", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("made_at", UTCDateTime(), nullable=False),
    Column("content", LargeBinary, nullable=False),
)


@dataclass(frozen=True)
class StoredDocument:
    """A stored document's record (its bytes are fetched by ``DocumentStore.content``)."""

    document_id: int
    kind: str
    period: str
    lang: str
    format: str
    provisional: bool
    events_hash: str
    sha256: str
    size: int
    made_at: datetime


class DocumentStore:
    """The ``documents`` table of ``engine`` (created on first use)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(engine, metadata)

    def add(
        self, kind: str, period: str, lang: str, fmt: str, provisional: bool, events_hash: str, content: bytes
    ) -> StoredDocument:
        """Keep ``content``; returns its record."""
        row: dict[str, Any] = {
            "kind": kind,
            "period": period,
            "lang": lang,
            "format": fmt,
            "provisional": provisional,
            "events_hash": events_hash,
            "sha256": hashlib.sha256(content).hexdigest(),
            "size": len(content),
            "made_at": datetime.now(UTC),
            "content": content,
        }
        with self.engine.begin() as conn:
            new_id = conn.execute(insert(documents).returning(documents.c.document_id), [row]).scalar_one()
        return StoredDocument(int(new_id), **{k: v for k, v in row.items() if k != "content"})

    def list(self, period: str | None = None, limit: int = 200) -> list[StoredDocument]:
        """Records, newest first (of ``period`` when given)."""
        c = documents.c
        columns = [col for col in documents.c if col.name != "content"]
        query = select(*columns).order_by(c.made_at.desc(), c.document_id.desc()).limit(limit)
        if period is not None:
            query = query.where(c.period == period)
        with self.engine.connect() as conn:
            return [StoredDocument(**dict(r._mapping)) for r in conn.execute(query)]

    def content(self, document_id: int) -> tuple[StoredDocument, bytes] | None:
        """A document's record and bytes, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(documents).where(documents.c.document_id == document_id)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        content = bytes(data.pop("content"))
        return StoredDocument(**data), content
