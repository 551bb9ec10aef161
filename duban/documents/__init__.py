"""The office's documents: notices and reports (``content``, the four renderers), the template of
fixed text (``template``), and the store of produced documents (``store``)."""

from __future__ import annotations

from collections.abc import Callable

from duban.documents.content import Document
from duban.documents.render_docx import render_docx
from duban.documents.render_html import render_html, render_pdf
from duban.documents.render_xlsx import render_xlsx

FORMATS: dict[str, tuple[Callable[[Document], bytes], str]] = {
    "docx": (render_docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xlsx": (render_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "html": (lambda doc: render_html(doc).encode("utf-8"), "text/html; charset=utf-8"),
    "pdf": (render_pdf, "application/pdf"),
}
"""Each format's renderer (a ``Document`` to bytes) and media type."""

__all__ = ["FORMATS", "Document"]
