"""The office's document use cases, called by ``duban report`` and the scheduled period close.

``report`` builds one notice in one format and language from the read models and snapshots (a closed
period from its snapshot, an open one provisional); ``produce_period_documents`` makes and stores
every format of a closed period's notice (what the period-close workflow runs after a weekly,
half-monthly or monthly close).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from duban import wiring
from duban.documents import FORMATS
from duban.documents.content import build_document
from duban.documents.store import DocumentStore, StoredDocument
from duban.documents.template import DEFAULT_TEMPLATE_PATH, load_template
from events.errors import ValidationError
from projections import scoring
from projections.notices import Notice, build_notice

CADENCE_KINDS = {"weekly": "weekly", "half-monthly": "half-monthly", "monthly": "monthly"}
"""The notice each closing cadence produces (a daily close produces none)."""


@dataclass(frozen=True)
class Report:
    """One rendered notice: its bytes, media type and the notice it shows."""

    content: bytes
    media_type: str
    notice: Notice


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValidationError("format", f"must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def report(
    url: str | Engine,
    kind: str,
    period: str,
    fmt: str,
    lang: str = "zh-CN",
    template: Path | None = None,
    scorebook: Path | None = None,
) -> Report:
    """The ``kind`` notice of ``period`` as ``fmt`` (docx, xlsx, html, pdf) in ``lang``.

    Raises:
        ValidationError: a bad kind, period, format, language or template (the field named).
        ConfigurationError: no read models at ``url``.
    """
    render, media = FORMATS[_format(fmt)]
    book = scoring.load_scorebook(scorebook) if scorebook else scoring.load_scorebook()
    chosen = load_template(template or DEFAULT_TEMPLATE_PATH, lang)
    notice = build_notice(wiring.read_models(url), kind, period, book)
    return Report(render(build_document(notice, chosen, datetime.now(UTC))), media, notice)


def produce_period_documents(
    engine: Engine, cadence: str, period: str, lang: str = "zh-CN", template: Path | None = None
) -> list[StoredDocument]:
    """Make and store the notice of closed ``period`` in every format (none for a daily close).

    Raises:
        ValidationError: as ``report``.
    """
    kind = CADENCE_KINDS.get(cadence)
    if kind is None:
        return []
    store = DocumentStore(engine)
    made = []
    for fmt in FORMATS:
        done = report(engine, kind, period, fmt, lang, template)
        notice = done.notice
        made.append(
            store.add(
                kind, notice.period, lang, fmt, notice.provisional, notice.events_hash or "", done.content
            )
        )
    return made


def list_documents(url: str | Engine, period: str | None = None) -> list[StoredDocument]:
    """The stored documents, newest first (of ``period`` when given)."""
    return DocumentStore(wiring.read_models(url)).list(period)


def fetch_document(url: str | Engine, document_id: int) -> tuple[StoredDocument, bytes]:
    """A stored document and its bytes.

    Raises:
        ValidationError: no document ``document_id`` (field ``id``).
    """
    found = DocumentStore(wiring.read_models(url)).content(document_id)
    if found is None:
        raise ValidationError("id", f"no document {document_id}")
    return found
