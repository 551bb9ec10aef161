"""The ``produce_documents`` activity: after a weekly, half-monthly or monthly close, make and store
the period's notice in every format.

The documents are made by duban's document service (``duban.documents.service``), which this layer
cannot import (entry points and wiring sit above the activities): the worker, the composition root,
hands the producing function in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from workflows.activity_contracts import ProduceDocumentsInput

Producer = Callable[[str, str], Sequence[Any]]
"""``produce(cadence, period)`` → the stored documents' records (with ``document_id``, ``format``,
``sha256``)."""


class DocumentProduction:
    """Holds the producer; ``produce_documents`` is the activity."""

    def __init__(self, produce: Producer) -> None:
        self.produce = produce

    @activity.defn(name="produce_documents")
    async def produce_documents(self, input: ProduceDocumentsInput) -> list[str]:
        """Make and store the documents (in a worker thread: rendering a PDF takes seconds); one
        line per document, ``"<id> <format> sha256:<hex>"``."""
        made = await asyncio.to_thread(self.produce, input.cadence, input.period)
        return [f"{d.document_id} {d.format} sha256:{d.sha256}" for d in made]
