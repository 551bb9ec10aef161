"""``duban ledger`` and its writers (``duban.ledger``) on SQLite and PostgreSQL, read back as the
office would: the CSV with the csv module, the XLSX with openpyxl.

Scenario (stored, then projected; expected cells worked out by hand):
- P urban/Sibaoshan/C1/G1/North, Asia/Shanghai, reg 2026-03-02T01:00Z (09:00 local), deadline +24 h
  (03-03T01:00Z), closed 03-03T13:00Z by office:zhang: 12 h late = 0.5 days, red, not on time.
- Q housing/Zhongbu/C2/G2/South, America/New_York, reg 2026-03-02T04:30Z (03-01 23:30 local), no
  deadline, cancelled 05:00Z (00:00 local) by office:wang, "不是问题 (not a problem)".
- R urban, Shanghai, reg 2020-06-01T00:00Z, deadline 06-02T00:00Z, dispatched, open: overdue by now −
  deadline, red.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import typer
from helpers.projections import fresh, project
from typer.testing import CliRunner, Result

from duban.cli.ledger import ledger
from duban.ledger import COLUMNS, headers, write_csv, write_xlsx
from events.envelope import EventEnvelope
from events.sql import make_engine
from projections import read_models as rm
from projections.ledger import LedgerFilter, days, ledger_rows
from workflows import item_rules
from workflows.item_model import CommandKind as K
from workflows.item_model import ItemCommand, ItemState, Registration

SH, NY = "Asia/Shanghai", "America/New_York"
REASON = "不是问题 (not a problem)"
R_DEADLINE = datetime(2020, 6, 2, tzinfo=UTC)


def utc(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _do(state: ItemState, kind: str, at: datetime, actor: str, **kw: Any) -> list[EventEnvelope]:
    if kind == K.DISPATCH:
        kw.setdefault("unit", state.unit)
    if kind == K.SUBMIT_RECTIFICATION:
        kw.setdefault("evidence", ["photo.jpg"])
    return item_rules.apply_command(state, ItemCommand(f"{state.item_id}:{kind}", kind, actor, at, **kw))


def _reg(
    item_id: str, dept: str, where: tuple[str, str, str, str], zone: str, at: datetime, hours: int | None
) -> tuple[ItemState, list[EventEnvelope]]:
    town, community, grid, district = where
    return item_rules.register(
        Registration(
            item_id=item_id,
            category="litter",
            reported_at=at,
            department=dept,
            unit=f"{dept}-team",
            town=town,
            community=community,
            grid=grid,
            zone=zone,
            district=district,
            source="patrol",
            resolution_deadline=at + timedelta(hours=hours) if hours else None,
            deadline_origin="rule" if hours else "none",
        )
    )


def scenario() -> list[EventEnvelope]:
    north, south = ("Sibaoshan", "C1", "G1", "North"), ("Zhongbu", "C2", "G2", "South")
    st, p = _reg("P", "urban", north, SH, utc(3, 2, 1), 24)
    steps = [(K.DISPATCH, 2, "dispatcher:ann"), (K.ACCEPT, 3, "unit:team"),
             (K.SUBMIT_RECTIFICATION, 10, "unit:team"), (K.VERIFY, 12, "inspector:li"),
             (K.CLOSE, 13 + 24, "office:zhang")]  # fmt: skip
    for kind, hour, actor in steps:
        p += _do(st, kind, utc(3, 2) + timedelta(hours=hour), actor)
    st, q = _reg("Q", "housing", south, NY, utc(3, 2, 4, 30), None)
    q += _do(st, K.CANCEL, utc(3, 2, 5), "office:wang", reason=REASON)
    st, r = _reg("R", "urban", north, SH, R_DEADLINE - timedelta(days=1), 24)
    r += _do(st, K.DISPATCH, R_DEADLINE - timedelta(hours=20), "dispatcher:ann")
    return r + p + q


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scenario stored and projected in a SQLite file or the session's PostgreSQL database."""
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'l.db'}"
    else:
        db = request.getfixturevalue("pg_url")
    engine = make_engine(db)
    fresh(engine)
    assert project(engine, scenario()).dead_lettered == 0
    engine.dispose()
    yield db


EN_P = ["P", "litter", "urban", "urban-team", "North", "Sibaoshan", "C1", "G1", "", "closed", "red",
        "2026-03-02 09:00:00", "2026-03-02 01:00:00", SH, "2026-03-03 09:00:00", "2026-03-03 01:00:00",
        "yes", "0.5", "no", "0", "no", "2026-03-03 21:00:00", "2026-03-03 13:00:00", "office:zhang", "",
        ""]  # fmt: skip
EN_Q = ["Q", "litter", "housing", "housing-team", "South", "Zhongbu", "C2", "G2", "", "cancelled", "",
        "2026-03-01 23:30:00", "2026-03-02 04:30:00", NY, "", "", "no", "0.0", "", "0", "no",
        "2026-03-02 00:00:00", "2026-03-02 05:00:00", "office:wang", REASON, ""]  # fmt: skip
ZH_HEAD = ["事项编号", "问题类别", "责任部门", "责任单位", "片区", "镇/街道", "社区/村", "网格", "督办单",
           "阶段", "亮灯", "立案时间(当地)", "立案时间(UTC)", "时区", "整改时限(当地)", "整改时限(UTC)",
           "是否超期", "超期天数", "按期销号", "升级督办级别", "是否延期", "销号/作废时间(当地)",
           "销号/作废时间(UTC)", "销号/作废人", "作废/合并原因", "合并至"]  # fmt: skip


def run(*args: str) -> Result:
    app = typer.Typer()
    app.command()(ledger)
    return CliRunner().invoke(app, list(args))


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel needs for the Chinese headers
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def r_days(before: datetime, after: datetime) -> set[Decimal]:
    """R's days overdue at some instant of ``[before, after]`` (it is open: they grow with now)."""
    return {days(before - R_DEADLINE), days(after - R_DEADLINE)}


def test_csv_on_stdout_in_english_by_hand(url: str) -> None:
    before = datetime.now(UTC)
    done = run("--database-url", url, "--lang", "en")
    after = datetime.now(UTC)
    assert done.exit_code == 0, done.output
    head, r, p, q = csv_rows(done.stdout_bytes)
    assert head[:3] == ["Item id", "Category", "Department"] and len(head) == len(COLUMNS) == 26
    assert (p, q) == (EN_P, EN_Q)
    assert r[0] == "R" and r[9:11] == ["dispatched", "red"] and r[16] == "yes"
    assert r[14:16] == ["2020-06-02 08:00:00", "2020-06-02 00:00:00"]
    assert Decimal(r[17]) in r_days(before, after) and Decimal(r[17]) > Decimal(2000)
    assert r[21:24] == ["", "", ""]


def test_csv_in_chinese_with_filters(url: str, tmp_path: Path) -> None:
    out = tmp_path / "台账.csv"
    done = run("--database-url", url, "--period", "2026-03", "--department", "urban", "--output", str(out))
    assert done.exit_code == 0, done.output
    assert "ledger: 1 items written to" in done.output
    head, p = csv_rows(out.read_bytes())
    assert head == ZH_HEAD
    assert p[9:11] == ["已销号", "红灯"] and (p[16], p[18], p[20]) == ("是", "否", "否")
    assert p[:9] == EN_P[:9] and p[11:16] == EN_P[11:16] and p[21:] == EN_P[21:]
    done = run("--database-url", url, "--lang", "en", "--period", "2026-03-01")  # Q: 03-01 in New York
    assert [row[0] for row in csv_rows(done.stdout_bytes)[1:]] == ["Q"]
    done = run("--database-url", url, "--lang", "en", "--overdue", "--light", "red", "--town", "Sibaoshan")
    assert [row[0] for row in csv_rows(done.stdout_bytes)[1:]] == ["R", "P"]
    done = run("--database-url", url, "--lang", "en", "--no-overdue", "--stage", "cancelled")
    assert [row[0] for row in csv_rows(done.stdout_bytes)[1:]] == ["Q"]
    done = run("--database-url", url, "--stage", "open", "--district", "North", "--community", "C1")
    assert [row[0] for row in csv_rows(done.stdout_bytes)[1:]] == ["R"]
    done = run("--database-url", url, "--category", "parking")
    assert csv_rows(done.stdout_bytes) == [ZH_HEAD]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["台账.csv"]  # no partial file left


def test_xlsx_holds_real_numbers_dates_and_booleans(url: str, tmp_path: Path) -> None:
    out = tmp_path / "ledger.xlsx"
    before = datetime.now(UTC)
    done = run("--database-url", url, "--output", str(out), "--lang", "en")  # the suffix says xlsx
    after = datetime.now(UTC)
    assert done.exit_code == 0, done.output
    assert "ledger: 3 items written to" in done.output
    book = openpyxl.load_workbook(out)
    sheet = book["Problem ledger"]
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["A"].width == COLUMNS[0].width
    assert sheet.column_dimensions["Y"].width == 30  # the withdrawal reason
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == headers("en") and sheet["A1"].font.bold
    r, p, q = rows[1:]
    assert (
        p[:11] == [v or None for v in EN_P[:11]] and p[13] == SH
    )  # an empty cell reads as None and p[23:] == ["office:zhang", None, None]
    assert p[11:13] == [datetime(2026, 3, 2, 9), datetime(2026, 3, 2, 1)]  # local wall clock, UTC
    assert p[14:16] == [datetime(2026, 3, 3, 9), datetime(2026, 3, 3, 1)]
    assert p[16:21] == [True, 0.5, False, 0, False]
    assert type(p[17]) is float and type(p[19]) is int and type(p[16]) is bool
    assert p[21:23] == [datetime(2026, 3, 3, 21), datetime(2026, 3, 3, 13)]
    assert sheet["R3"].number_format == "0.0" and sheet["L3"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet["L3"].is_date
    assert q[9:11] == ["cancelled", None] and q[14:16] == [None, None] and q[18] is None
    assert q[11:13] == [datetime(2026, 3, 1, 23, 30), datetime(2026, 3, 2, 4, 30)]
    assert q[16:18] == [False, 0.0] and q[21:25] == [
        datetime(2026, 3, 2),
        datetime(2026, 3, 2, 5),
        "office:wang",
        REASON,
    ]
    assert isinstance(r[17], float) and Decimal(str(r[17])) in r_days(before, after)


def test_writers_write_to_a_stream_and_leave_it_open(url: str) -> None:
    engine = make_engine(url)
    try:
        now = utc(12, 1)
        stream = io.BytesIO()
        assert write_csv(ledger_rows(engine, LedgerFilter(stage="closed"), now), stream, "en") == 1
        assert not stream.closed and csv_rows(stream.getvalue()) == [headers("en"), EN_P]
        book_bytes = io.BytesIO()
        assert write_xlsx(ledger_rows(engine, LedgerFilter(), now), book_bytes, "zh-CN") == 3
        book = openpyxl.load_workbook(io.BytesIO(book_bytes.getvalue()))
        sheet = book["问题台账"]
        cells = [[c.value for c in row] for row in sheet.iter_rows()]
        assert cells[0] == ZH_HEAD and [row[0] for row in cells[1:]] == ["R", "P", "Q"]
        # R: 2020-06-02 → 2026-06-02 is 6 × 365 + 1 (2024-02-29) = 2191 days; → 2026-12-01 is
        # 28 + 31 + 31 + 30 + 31 + 30 + 1 = 182 more: 2373 days
        assert cells[1][17] == 2373.0 and cells[2][9:11] == ["已销号", "红灯"]
    finally:
        engine.dispose()


def test_errors_name_the_option(url: str, tmp_path: Path) -> None:
    def refused(*args: str) -> str:
        done = run("--database-url", url, *args)
        assert done.exit_code == 2, done.output
        return done.output

    assert "error: output: an XLSX ledger is written to a file" in refused("--format", "xlsx")
    assert "error: format: cannot tell it from the output's suffix '.txt'" in refused(
        "--output", str(tmp_path / "l.txt")
    )
    assert "error: period: '2026-13'" in refused("--period", "2026-13")
    assert "--stage" in refused("--stage", "done") and "--light" in refused("--light", "blue")
    assert "--lang" in refused("--lang", "fr")
    assert "error: output: cannot write" in refused("--output", str(tmp_path / "no" / "l.csv"))
    assert list(tmp_path.iterdir()) == []


def test_databases_without_what_the_ledger_needs_are_refused(tmp_path: Path) -> None:
    done = run("--database-url", f"sqlite:///{tmp_path / 'missing.db'}")
    assert done.exit_code == 2 and "error: database_url: no such SQLite file" in done.output
    bare = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    rm.create_tables(bare)  # read models, no event store
    bare.dispose()
    done = run("--database-url", f"sqlite:///{tmp_path / 'bare.db'}", "--output", str(tmp_path / "l.xlsx"))
    assert done.exit_code == 2 and "holds read models but no event store" in done.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.db"]


def test_formula_like_text_is_neutralised_and_numbers_stay_numbers(tmp_path: Path) -> None:
    """Bug 2: text beginning with = + - @ (or a tab) went into the CSV and the XLSX as it was, for a
    spreadsheet to run as a formula. Item X of department ``=1+1``, town ``@Town``, community
    ``-C``, grid ``+G``, reported Mon 2 Nov 2026 09:00 in Shanghai and closed at 11:00 (deadline a day
    after the report: on time, 0.0 days overdue, escalation level 0)."""
    from helpers.notices import at, done, item

    url = f"sqlite:///{tmp_path / 'formula.db'}"
    events = item("X", "=1+1", "@Town", at(11, 2, 9), *done(at(11, 2, 9, 30)))
    for e in events[:1]:
        e.payload.update(community="-C", grid="+G")
    assert project(make_engine(url), events).dead_lettered == 0
    assert run("--database-url", url, "--lang", "en", "--output", str(tmp_path / "l.csv")).exit_code == 0
    [head, row] = csv_rows((tmp_path / "l.csv").read_bytes())
    got = dict(zip(head, row, strict=True))
    assert (got["Department"], got["Unit"], got["Town / sub-district"]) == ("'=1+1", "'=1+1-team", "'@Town")
    assert (got["Community / village"], got["Grid"]) == ("'-C", "'+G")
    assert (got["Days overdue"], got["Escalation level"], got["Stage"]) == ("0.0", "0", "closed")
    assert run("--database-url", url, "--lang", "en", "--output", str(tmp_path / "l.xlsx")).exit_code == 0
    sheet = openpyxl.load_workbook(tmp_path / "l.xlsx").active
    assert sheet is not None
    cells = dict(zip([c.value for c in sheet[1]], sheet[2], strict=True))
    assert cells["Department"].value == "'=1+1" and cells["Department"].data_type == "s"
    assert (cells["Community / village"].value, cells["Grid"].value) == ("'-C", "'+G")
    assert cells["Days overdue"].value == 0 and cells["Days overdue"].data_type == "n"
    assert cells["Escalation level"].value == 0 and cells["Overdue"].value is False


def test_the_stage_option_takes_suspended(url: str) -> None:
    """Bug 1: ``--stage suspended`` was refused by the option (the scenario has no suspended item)."""
    done = run("--database-url", url, "--stage", "suspended", "--lang", "en")
    assert done.exit_code == 0, done.output
    assert len(csv_rows(done.stdout_bytes)) == 1  # the header only
