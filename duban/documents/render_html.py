"""A notice as HTML (jinja2, ``templates/notice.html.j2``, charts inline as SVG) and as PDF
(WeasyPrint, from the same HTML: A4, page numbers, CJK text in Noto Serif/Sans CJK)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from duban.documents import charts
from duban.documents.content import Document

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(doc: Document) -> str:
    """The document as one self-contained HTML page (no external file or font is fetched)."""
    trend = charts.as_svg(charts.trend_chart(doc.trend, doc.labels)) if doc.trend else ""
    lights = charts.as_svg(charts.lights_chart(doc.lights, doc.labels)) if doc.lights else ""
    return _ENV.get_template("notice.html.j2").render(doc=doc, trend_svg=trend, lights_svg=lights)


def render_pdf(doc: Document) -> bytes:
    """The document as PDF, laid out by WeasyPrint from ``render_html``."""
    from weasyprint import HTML

    pdf: bytes = HTML(string=render_html(doc)).write_pdf()
    return pdf
