"""Issue 11: the weekly notice of a hand-made week on China's calendar, in Chinese, every number
worked out by hand here; read back from DOCX, XLSX, HTML and PDF; frozen once the week is closed.

The week is 2026-W45 (Monday 2 to Sunday 8 November 2026, Asia/Shanghai). The category is
``pavement``, which has no rule of its own: 1 clock hour to accept, 24 clock hours to resolve
(rulebook 2026.2, the ``*`` rules), so each deadline is the report time plus a day.

- A (UM, Qiaotou): reported Mon 09:00, accepted 09:30, rectified 15:00, verified, closed 16:00: on time.
  (Every item is dispatched at its report and accepted half an hour later: ``helpers.notices``.)
- B (UM, Qiaotou): reported Mon 10:00 (deadline Tue 10:00), accepted 10:30; the breach fires at
  Tue 10:00 with the escalation to the department head (the next rung is a working day later);
  rectified Tue 12:00, verified, closed 13:00: 3 hours late = 0.125 days, shown 0.1.
- C (Greening, Xicheng): reported Sat 7th 20:00 (deadline Sun 20:00), accepted; open. At the
  close (Mon 9th 00:10) it is breached and escalated once, 4 h 10 min overdue = 0.1736 days: 0.2.
- D (Greening, Xicheng): reported Sun 20:00, accepted, open: 4 h 10 min of 24 h used at the close,
  green.
- E (UM, Qiaotou): reported Sun 01:00, accepted, open: 23 h 10 min of 24 h used (96.5%), yellow.
- F (Greening, Xicheng): reported Tue 09:00, dispatched, cancelled 10:00: withdrawn.

By hand: received (registered less withdrawn) UM 3 (A, B, E), Greening 2 (C, D): 5. Rectified A,
B: 2, rate 2/5 = 40.00%. Closed with a deadline A, B; on time A: 50.00%. Closed late 1 (B). Open
past the deadline at the close: 1 (C).

Scores (scorebook 2026.1: weights on-time 0.4, rectification 0.3, dispatch 0.1, report-in 0.1,
rework 0.1 lower is better, renormalised over the rates that have a denominator; breach −0.5,
escalation −1.0, on-time close +0.1):
- UM: on-time 1/2, rectification 2/3, dispatch 3/3, no report-in, rework 0/2 (share 1):
  100 × (0.4 × 1/2 + 0.3 × 2/3 + 0.1 + 0.1) / 0.9 = 66.6667; − 0.5 − 1.0 + 0.1 = 65.27: pass (合格).
- Greening: rectification 0/2, dispatch 3/3 (C, D, F), nothing else:
  100 × (0.3 × 0 + 0.1 × 1) / 0.4 = 25; − 0.5 − 1.0 = 23.50: fail (不合格).
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pypdfium2 as pdfium
import pytest
from docx import Document as read_docx
from docx.oxml.ns import qn
from docx.table import Table as DocxTable
from docx.text.paragraph import Paragraph
from helpers.items import CST
from helpers.notices import at as local
from helpers.notices import done, item
from helpers.projections import fresh, project
from sqlalchemy import Engine

from duban.documents.service import report
from events.envelope import EventEnvelope
from events.sql import make_engine
from projections.frozen_periods import freeze_period, read_snapshots
from projections.scoring import load_scorebook

CLOSE = datetime(2026, 11, 9, 0, 10, tzinfo=CST)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return local(11, day, hour, minute)


def week() -> list[EventEnvelope]:
    return (
        item("A", "UM", "Qiaotou", at(2, 9), *done(at(2, 15)))
        + item("B", "UM", "Qiaotou", at(2, 10), *done(at(3, 12)))
        + item("C", "Greening", "Xicheng", at(7, 20), until=CLOSE)
        + item("D", "Greening", "Xicheng", at(8, 20), until=CLOSE)
        + item("E", "UM", "Qiaotou", at(8, 1), until=CLOSE)
        + item("F", "Greening", "Xicheng", at(3, 9), ("cancel", at(3, 10)))
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def closed_week(request: pytest.FixtureRequest, tmp_path: Any) -> Engine:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'week.db'}")
    else:
        engine = make_engine(request.getfixturevalue("pg_url"))
        fresh(engine)
    project(engine, week())
    freeze_period(engine, "2026-W45", load_scorebook(), CLOSE)
    return engine


SUMMARY = (
    "2026年第45周，全区共受理问题5件，已整改2件，整改率40.00%；按期结案率50.00%"
    "（按期结案1件/有期限结案2件），超期结案1件，截至统计时点超期未办结1件。"
)
RANKING = [
    ["1", "新", "UM", "65.27", "合格", "2/3", "66.67%", "1/2", "50.00%"],
    ["2", "新", "Greening", "23.50", "不合格", "0/2", "0.00%", "0/0", "—"],
]
OVERDUE = [["C", "pavement", "Greening", "Greening-team", "Xicheng", "2026-11-08 20:00", "0.2"]]
LATE = [["B", "pavement", "UM", "UM-team", "Qiaotou", "2026-11-03 10:00", "0.1"]]
LIGHTS = [["Greening", "1", "0", "1"], ["UM", "0", "1", "0"]]


def docx_tables(content: bytes) -> dict[str, list[list[str]]]:
    """Each heading of the DOCX and the rows (without the header row) of the table after it."""
    doc = read_docx(io.BytesIO(content))
    out: dict[str, list[list[str]]] = {}
    current = None
    for child in doc.element.body.iterchildren():
        if child.tag == qn("w:p"):
            para = Paragraph(child, doc)
            if para.style is not None and para.style.name.startswith("Heading"):
                current = para.text
                out[current] = []
        elif child.tag == qn("w:tbl") and current is not None:
            rows = [[cell.text for cell in row.cells] for row in DocxTable(child, doc).rows]
            out[current] = rows[1:]
    return out


def test_the_weekly_notice_in_chinese_carries_the_numbers_worked_out_by_hand(closed_week: Engine) -> None:
    [snapshot, *_] = read_snapshots(closed_week, "2026-W45")
    docx = report(closed_week, "weekly", "2026-W45", "docx", "zh-CN")
    assert not docx.notice.provisional
    doc = read_docx(io.BytesIO(docx.content))
    texts = [p.text for p in doc.paragraphs]
    assert "关于2026年第45周各部门问题整改情况的通报" in texts
    assert "创城办〔2026〕周45号" in texts
    assert SUMMARY in texts
    assert "与上期相比，整改率上期无可比数据，按期结案率上期无可比数据。" in texts
    tables = docx_tables(docx.content)
    assert tables["部门排名"] == RANKING
    assert tables["超期未办结问题（红灯）"] == OVERDUE
    assert tables["本期超期结案问题"] == LATE
    assert tables["各部门红黄绿灯"] == LIGHTS
    assert tables["连续两期出现超期的单位"] == []
    footer = doc.sections[0].footer.paragraphs[0].text
    assert snapshot.events_hash in footer and f"事件{snapshot.events_count}条" in footer

    book = openpyxl.load_workbook(
        io.BytesIO(report(closed_week, "weekly", "2026-W45", "xlsx", "zh-CN").content)
    )
    ranking = [list(r) for r in book["部门排名"].iter_rows(min_row=2, values_only=True)]
    assert ranking[0][2:5] == ["UM", 65.27, "合格"] and ranking[0][6] == pytest.approx(2 / 3, abs=5e-5)
    assert ranking[1][2:5] == ["Greening", 23.5, "不合格"] and ranking[1][6] == 0
    assert book["部门排名"].cell(2, 7).number_format == "0.00%"  # a number shown in percent, not text
    trend = [list(r) for r in book["整改率周走势"].iter_rows(min_row=2, values_only=True)]
    assert trend[-1] == ["2026-W45", "2/5", 0.4] and all(r[1] == "0/0" for r in trend[:-1])

    html = report(closed_week, "weekly", "2026-W45", "html", "zh-CN").content.decode()
    assert SUMMARY in html and snapshot.events_hash in html and "<svg" in html
    pdf = pdfium.PdfDocument(report(closed_week, "weekly", "2026-W45", "pdf", "zh-CN").content)
    text = re.sub(r"\s+", "", "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf))))
    assert SUMMARY in text and snapshot.events_hash in text
    assert "1新UM65.27合格2/366.67%1/250.00%" in text


def test_a_closed_week_rebuilt_later_gives_the_same_numbers(closed_week: Engine) -> None:
    before = report(closed_week, "weekly", "2026-W45", "html", "en").content.decode()
    # Something happens after the close: D is closed on Monday (a new week), and a late event of
    # the closed week arrives (it counts on the next open day, never in the frozen week).
    late = item("G", "UM", "Qiaotou", at(4, 9), ("submit_rectification", at(4, 10)), until=CLOSE)
    project(closed_week, late)
    after = report(closed_week, "weekly", "2026-W45", "html", "en").content.decode()
    assert _numbers(before) == _numbers(after)
    assert "received 5 items and rectified 2" in after


def test_an_open_week_is_marked_provisional(closed_week: Engine) -> None:
    done = report(closed_week, "weekly", "2026-W46", "html", "en")
    assert done.notice.provisional and "PROVISIONAL" in done.content.decode()
    assert "not closed" in done.content.decode()


def _numbers(html: str) -> list[str]:
    body = re.sub(r"<svg.*?</svg>", "", html, flags=re.S)
    body = body.split("<footer>")[0].split('<div class="signature">')[0]
    return re.findall(r"\d+(?:\.\d+)?%?", body)


# --- bugs found by the office's tester -------------------------------------------------------------


def test_an_ended_period_not_closed_counts_open_past_deadline_at_its_end(tmp_path: Any) -> None:
    """Bug 9: the week not closed, read on Fri 20 Nov: at its end (Mon 9th 00:00) only C was open past
    its deadline (Sun 8th 20:00); D (deadline Mon 9th 20:00) and E (Mon 9th 01:00) passed theirs after
    it. Counted at now, all three were."""
    from projections.notices import build_notice

    engine = make_engine(f"sqlite:///{tmp_path / 'open.db'}")
    project(engine, week())
    notice = build_notice(engine, "weekly", "2026-W45", load_scorebook(), now=local(11, 20, 12))
    assert notice.provisional and notice.cut_off == datetime(2026, 11, 9, tzinfo=CST)
    assert notice.summary.overdue_open == 1
    assert [i["item_id"] for i in notice.findings["overdue_open"]["items"]] == ["C"]
    assert notice.findings["overdue_open"]["items"][0]["days"] == "0.2"  # 4 h = 0.1667 days


def test_a_period_that_has_not_begun_is_refused(closed_week: Engine) -> None:
    from events.errors import ValidationError

    with pytest.raises(ValidationError, match=r"period: 2099-W01 has not begun \(it starts 2098-12-29"):
        report(closed_week, "weekly", "2099-W01", "html", "en")


def test_english_sheet_names_are_short_proper_names(closed_week: Engine) -> None:
    """Bug 7: captions over 31 characters fell back to the table's key (``overdue_open``)."""
    book = openpyxl.load_workbook(io.BytesIO(report(closed_week, "weekly", "2026-W45", "xlsx", "en").content))
    assert book.sheetnames == [
        "Summary",
        "Ranking by department",
        "Open past deadline (red)",
        "Items closed late in the period",
        "Breaches two periods running",
        "Lights by department",
        "Rectification rate by week",
    ]
    assert len(set(book.sheetnames)) == len(book.sheetnames)
    assert [r[0] for r in book["Open past deadline (red)"].iter_rows(min_row=2, values_only=True)] == ["C"]


def test_formula_like_text_is_neutralised_in_the_report_xlsx(tmp_path: Any) -> None:
    """Bug 2: a department named ``=1+1`` was written as a formula. Its text now starts with a quote;
    the score next to it stays a number (on time and rectified 1/1: 100 + 0.1 → 100.10)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'formula.db'}")
    project(engine, item("X", "=1+1", "@Town", at(2, 9), *done(at(2, 10))))
    book = openpyxl.load_workbook(io.BytesIO(report(engine, "weekly", "2026-W45", "xlsx", "en").content))
    [row] = list(book["Ranking by department"].iter_rows(min_row=2, values_only=True))
    assert row[2] == "'=1+1" and row[3] == 100.1 and row[1] == "new"
    assert book["Ranking by department"].cell(2, 3).data_type == "s"  # a string, never a formula


def test_interview_reasons_are_in_the_documents_language(closed_week: Engine) -> None:
    """Bug 6: the reasons (recorded in English) were printed in English in the Chinese notice."""
    import dataclasses

    from duban.documents.content import build_document
    from duban.documents.template import load_template
    from projections.interviews import REASONS
    from projections.notices import build_notice

    notice = build_notice(closed_week, "weekly", "2026-W45", load_scorebook())
    reasons = [
        REASONS["counter_at_least"].format(n=6, counter="breached", min=5),
        REASONS["last_place"].format(level="department", months="2026-10, 2026-11"),
    ]
    found = {
        **notice.findings,
        "interviews": [{"level": "department", "unit_key": "UM", "rules": [], "reasons": reasons}],
    }
    monthly = dataclasses.replace(notice, kind="monthly", findings=found)
    [zh] = [
        t for t in build_document(monthly, load_template(lang="zh-CN"), CLOSE).tables if t.key == "interviews"
    ]
    assert [c.value for c in zh.rows[0]] == [
        "部门", "UM", "本月超期6次（规则：达到5次即约谈）；2026-10, 2026-11在部门排名中均居末位"
    ]  # fmt: skip
    [en] = [
        t for t in build_document(monthly, load_template(lang="en"), CLOSE).tables if t.key == "interviews"
    ]
    assert en.rows[0][2].value == "; ".join(reasons)


def test_report_command_errors_name_the_option_without_a_traceback(
    closed_week: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug 3: tracebacks for a binary format without --output, an unsupported DUBAN_DOCUMENTS_LANG
    and a title with an unknown placeholder; bug 4: a number pattern reaching an attribute."""
    from typer.testing import CliRunner

    from duban.cli.documents import report_app

    url = closed_week.url.render_as_string(hide_password=False)
    monkeypatch.chdir(tmp_path)
    for name in ("DUBAN_DOCUMENTS_LANG", "DUBAN_DOCUMENTS_TEMPLATE", "DUBAN_CONFIG"):
        monkeypatch.delenv(name, raising=False)

    def refused(*args: str) -> str:
        done = CliRunner().invoke(
            report_app, ["weekly", "--period", "2026-W45", "--database-url", url, *args]
        )
        assert done.exit_code == 2, done.output
        assert done.exception is None or isinstance(done.exception, SystemExit)
        return done.output

    for fmt in ("pdf", "docx", "xlsx"):
        assert f"error: output: a {fmt} document is binary" in refused("--format", fmt)
    monkeypatch.setenv("DUBAN_DOCUMENTS_LANG", "fr")
    assert "documents_lang must be zh-CN or en, got 'fr'" in refused()
    monkeypatch.delenv("DUBAN_DOCUMENTS_LANG")
    source = (Path(__file__).parents[2] / "duban/documents/templates/default.yaml").read_text(
        encoding="utf-8"
    )
    title = tmp_path / "title.yaml"
    title.write_text(source.replace("weekly: 关于{period}", "weekly: 关于{period}{week}"), encoding="utf-8")
    assert "error: zh-CN.titles.weekly: may name only {period}, not {week}" in refused(
        "--template", str(title)
    )
    number = tmp_path / "number.yaml"
    number.write_text(
        source.replace("{kind_code}{serial}号", "{kind_code.__class__}{serial}号"), encoding="utf-8"
    )
    assert "error: zh-CN.number: may name only {year}, {kind_code}, {serial}, not {kind_code.__class__}" in (
        refused("--template", str(number))
    )
    assert (
        "has not begun"
        in CliRunner().invoke(report_app, ["weekly", "--period", "2099-W01", "--database-url", url]).output
    )
    listed = CliRunner().invoke(report_app, ["list", "--database-url", url])
    assert listed.exit_code == 0 and listed.output.startswith("no documents stored")


def test_the_dashboard_offers_only_periods_the_scorebook_covers(tmp_path: Any) -> None:
    """Bug 5: with items in October and November 2026 and a scorebook from 1 November, October was
    offered and then refused (422). Only November is offered; October is refused, naming the period.
    The month's rates say whether they are frozen (bug: a closed month's came live)."""
    import yaml

    from events.errors import ValidationError
    from projections.dashboard import dashboard_data
    from projections.scoring import DEFAULT_SCOREBOOK_PATH, parse_scorebook

    data = yaml.safe_load(DEFAULT_SCOREBOOK_PATH.read_text(encoding="utf-8"))
    data["versions"][0]["effective_from"] = datetime(2026, 11, 1).date()
    book = parse_scorebook(data)
    engine = make_engine(f"sqlite:///{tmp_path / 'board.db'}")
    project(engine, item("O", "UM", "Qiaotou", local(10, 20, 9), *done(local(10, 20, 10))) + week())
    now = local(11, 20, 12)
    board = dashboard_data(engine, None, "department", book, now)
    assert (board["periods"], board["period"]) == (["2026-11"], "2026-11")
    assert board["cards"]["this_month"]["frozen"] is False  # November is open: live, and marked so
    with pytest.raises(ValidationError, match="period: starts 2026-10-01, before scorebook"):
        dashboard_data(engine, "2026-10", "department", book, now)
    freeze_period(engine, "2026-10", load_scorebook(), local(11, 1, 0, 10))
    project(engine, item("Late", "UM", "Qiaotou", local(10, 21, 9), until=now))  # after the close
    october = dashboard_data(engine, "2026-11", "department", book, now)["cards"]["last_month"]
    # as frozen: O only (received 1, rectified 1); the late item counts on an open day, not October
    assert october["frozen"] is True and october["rectification"]["denominator"] == 1


def test_the_dashboard_page_shows_a_refusal_instead_of_breaking() -> None:
    """Bug 5: the page read ``d.period`` of a refusal and threw; it now shows the reason."""
    from duban.gateway.dashboard import _ENV

    page = _ENV.get_template("dashboard.html.j2").render(lang="en", refresh_ms=10_000)
    assert '<div id="error" role="alert" hidden></div>' in page
    assert "if (!answer.ok || !d || !d.cards)" in page and "showError(" in page
