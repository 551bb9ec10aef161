"""Issue 11 on real records: a Boston subset through ``duban simulate``, two months closed, and the
monthly notice of the second in DOCX, XLSX, HTML and PDF, each read back (python-docx, openpyxl, the
HTML's tables, the PDF's text) and compared, department by department, with what ``duban
indicators`` and ``duban scores`` print for that month, and with the snapshot's events hash."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import openpyxl
import pypdfium2 as pdfium
import pytest
from docx import Document as read_docx
from helpers.paths import DATA
from typer.testing import CliRunner

from duban import services
from duban.cli import app
from duban.config import Settings
from duban.documents.service import report
from duban.jobs.simulate import Replay, SimulationOptions
from projections.frozen_periods import read_snapshots

BOSTON = DATA / "boston311_2022_sample.csv"
MONTH, BEFORE = "2022-09", "2022-08"
pytestmark = pytest.mark.skipif(not BOSTON.is_file(), reason=f"shared data not found at {BOSTON}")


@pytest.fixture(scope="module")
def simulated(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import asyncio

    folder = tmp_path_factory.mktemp("boston-docs")
    url = f"sqlite:///{folder / 'sim.db'}"
    settings = replace(Settings(), kafka_bootstrap=broker, kafka_idempotent=False, data_dir=folder)
    options = SimulationOptions("boston311", BOSTON, limit=300, database_url=url, progress=False)
    asyncio.run(Replay(settings, options).run())
    for month in range(1, 13):  # every month of the subset (2022) closed, in order
        services.close_period(url, f"2022-{month:02d}", None, 30)
    yield url


def cli_json(*args: str) -> list[dict[str, Any]]:
    done = CliRunner().invoke(app, [*args, "--format", "json"])
    assert done.exit_code == 0, done.output
    return list(json.loads(done.output))


@pytest.fixture(scope="module")
def expected(simulated: str) -> dict[str, dict[str, str]]:
    """Per department, as the CLI prints it: score, and rectification and on-time n/d and rate."""
    indicators = {
        r["unit_key"]: r
        for r in cli_json("indicators", "--by", "department", "--period", MONTH, "--database-url", simulated)
    }
    scores = cli_json("scores", "--by", "department", "--period", MONTH, "--database-url", simulated)
    out = {}
    for s in scores:
        ind = indicators[s["unit_key"]]
        rect, on_time = ind["rectification_rate"], ind["on_time_closure_rate"]
        out[s["unit_key"]] = {
            "rank": str(s["rank"]),
            "score": s["score"] or "—",
            "rect": f"{rect['numerator']}/{rect['denominator']}",
            "rect_rate": _percent(rect["value"]),
            "on_time": f"{on_time['numerator']}/{on_time['denominator']}",
            "on_time_rate": _percent(on_time["value"]),
        }
    assert len(out) >= 3  # a month of several departments
    return out


def _percent(value: str | None) -> str:
    from decimal import Decimal

    return "—" if value is None else f"{Decimal(value) * 100:.2f}%"


def _row(cells: list[str]) -> dict[str, str]:
    rank, _move, _unit, score, _band, rect, rect_rate, on_time, on_time_rate = cells
    return {
        "rank": rank,
        "score": score,
        "rect": rect,
        "rect_rate": rect_rate,
        "on_time": on_time,
        "on_time_rate": on_time_rate,
    }


def test_the_docx_notice_has_the_clis_department_numbers(
    simulated: str, expected: dict[str, dict[str, str]]
) -> None:
    doc = read_docx(io.BytesIO(report(simulated, "monthly", MONTH, "docx", "en").content))
    ranking = doc.tables[0]  # the department ranking comes first
    got = {row.cells[2].text: _row([c.text for c in row.cells]) for row in list(ranking.rows)[1:]}
    assert got == expected
    [snapshot, *_] = read_snapshots(services.wiring.read_models(simulated), MONTH)
    assert snapshot.events_hash in doc.sections[0].footer.paragraphs[0].text


def test_the_xlsx_notice_has_the_same_numbers_as_numbers(
    simulated: str, expected: dict[str, dict[str, str]]
) -> None:
    book = openpyxl.load_workbook(io.BytesIO(report(simulated, "monthly", MONTH, "xlsx", "en").content))
    sheet = book["Ranking by department"]
    for rank, _move, unit, score, _band, rect, rect_rate, on_time, on_time_rate in sheet.iter_rows(
        min_row=2, values_only=True
    ):
        want = expected[unit]
        assert (str(rank), rect, on_time) == (want["rank"], want["rect"], want["on_time"])
        assert (f"{score:.2f}" if score is not None else "—") == want["score"]
        for value, shown in ((rect_rate, want["rect_rate"]), (on_time_rate, want["on_time_rate"])):
            assert (f"{value * 100:.2f}%" if value is not None else "—") == shown
    assert len(list(sheet.iter_rows(min_row=2))) == len(expected)
    [snapshot, *_] = read_snapshots(services.wiring.read_models(simulated), MONTH)
    assert any(snapshot.events_hash in str(c.value) for row in book["Summary"].iter_rows() for c in row)


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def test_the_html_and_pdf_notices_say_the_same(simulated: str, expected: dict[str, dict[str, str]]) -> None:
    html = report(simulated, "monthly", MONTH, "html", "en").content.decode()
    parser = _Tables()
    parser.feed(html)
    got = {row[2]: _row(row) for row in parser.tables[0][1:]}
    assert got == expected
    [snapshot, *_] = read_snapshots(services.wiring.read_models(simulated), MONTH)
    assert snapshot.events_hash in html and "PROVISIONAL" not in html
    pdf = pdfium.PdfDocument(report(simulated, "monthly", MONTH, "pdf", "en").content)
    text = re.sub(r"\s+", "", "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf))))
    assert snapshot.events_hash in text
    for unit, want in expected.items():
        cells = [want["score"], want["rect"], want["rect_rate"], want["on_time"], want["on_time_rate"]]
        assert re.sub(r"\s+", "", unit) in text and all(c in text for c in cells), unit


def test_the_cli_writes_the_monthly_notice_and_lists_stored_documents(simulated: str, tmp_path: Path) -> None:
    out = tmp_path / "notice.pdf"
    done = CliRunner().invoke(
        app,
        [
            "report",
            "monthly",
            "--period",
            MONTH,
            "--lang",
            "en",
            "--output",
            str(out),
            "--database-url",
            simulated,
        ],
    )
    assert done.exit_code == 0, done.output
    assert out.read_bytes().startswith(b"%PDF") and "closed, events hash" in done.output
    bad = CliRunner().invoke(app, ["report", "monthly", "--period", "2022-W05", "--database-url", simulated])
    assert bad.exit_code == 2 and "error: period: '2022-W05' is not a monthly period" in bad.output


def test_every_closed_month_recomputed_from_the_log_has_no_difference(simulated: str) -> None:
    from duban.audit.period import audit_period

    for month in range(1, 13):
        audit = audit_period(simulated, f"2022-{month:02d}")
        assert audit.differences == [], (month, [str(d) for d in audit.differences[:5]])
        assert audit.events > 0


def test_a_counter_changed_by_hand_is_the_one_difference_found(simulated: str) -> None:
    from sqlalchemy import select, update

    from duban.audit.period import audit_period
    from events.sql import make_engine
    from projections import read_models as rm

    engine = make_engine(simulated)
    c = rm.unit_day_counters.c
    where = (
        (c.level == "department") & (c.day >= date(2022, 9, 1)) & (c.day < date(2022, 10, 1)) & (c.closed > 0)
    )
    with engine.begin() as conn:
        target = conn.execute(
            select(c.unit_key, c.day, c.closed).where(where).order_by(c.unit_key, c.day).limit(1)
        ).one()
        conn.execute(
            update(rm.unit_day_counters)
            .where(c.level == "department", c.unit_key == target.unit_key, c.day == target.day)
            .values(closed=target.closed + 1)
        )
    try:
        audit = audit_period(simulated, MONTH)
        assert [(d.what, d.unit, d.field, d.found, d.expected) for d in audit.differences] == [
            (
                "counters",
                f"department|{target.unit_key}|{target.day}",
                "closed",
                target.closed + 1,
                target.closed,
            )
        ]
        done = CliRunner().invoke(app, ["audit", "period", MONTH, "--database-url", simulated])
        assert done.exit_code == 1 and "1 differences" in done.output
    finally:
        with engine.begin() as conn:
            conn.execute(
                update(rm.unit_day_counters)
                .where(c.level == "department", c.unit_key == target.unit_key, c.day == target.day)
                .values(closed=target.closed)
            )
        engine.dispose()
    assert CliRunner().invoke(app, ["audit", "period", MONTH, "--database-url", simulated]).exit_code == 0


def test_the_simulated_log_verifies_with_a_seal_per_closed_month(simulated: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from helpers.paths import REPO

    done = CliRunner().invoke(app, ["audit", "verify-log", "--database-url", simulated])
    assert done.exit_code == 0 and done.output.strip().endswith("12 seals: verified"), done.output
    export = tmp_path / "log.jsonl"
    assert (
        CliRunner()
        .invoke(app, ["audit", "export", "--output", str(export), "--database-url", simulated])
        .exit_code
        == 0
    )
    script = REPO / "duban" / "audit" / "standalone_verify.py"
    alone = subprocess.run([sys.executable, "-I", str(script), str(export)], capture_output=True, text=True)
    assert alone.returncode == 0 and alone.stdout.strip().endswith("12 seals: verified"), alone.stdout


def test_a_chinese_document_warns_when_no_cjk_font_is_installed(
    simulated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from duban.documents import charts

    args = ["report", "monthly", "--period", MONTH, "--lang", "zh-CN", "--database-url", simulated]
    fonts = subprocess.run(["fc-list"], capture_output=True, text=True, check=False).stdout
    installed = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "a.docx")])
    assert installed.exit_code == 0, installed.output
    # fontconfig, asked on its own, says whether the machine has the font
    assert ("no CJK font" in installed.output) == ("Noto Sans CJK" not in fonts)
    monkeypatch.setattr(charts, "font_family", lambda: ["DejaVu Sans"])  # a machine without it
    missing = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "b.docx")])
    assert missing.exit_code == 0, missing.output
    assert "warning: no CJK font (Noto Sans CJK SC) is installed" in missing.output
    assert "apt-get install fonts-noto-cjk" in missing.output
    english = CliRunner().invoke(app, [*args[:5], "en", *args[6:], "--output", str(tmp_path / "c.docx")])
    assert english.exit_code == 0 and "no CJK font" not in english.output
