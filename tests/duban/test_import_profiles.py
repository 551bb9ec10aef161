"""Profiles as data: a user-written profile (the README's), the wizard's draft, and bad profiles.

The layout is made here (Rivertown: lower-case headers, ``;``, day-first times, Europe/Berlin), so
every expected value is worked out from the rows written below, by hand or with ``zoneinfo``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from helpers.paths import REPO

from duban.errors import ConfigurationError, ImportRowError
from duban.importers.base import CaseStatus, ImportedCase
from duban.importers.profile_spec import load_profile_file, parse_profile
from duban.importers.profiles import load_cases
from duban.importers.wizard import draft_profile

BERLIN = ZoneInfo("Europe/Berlin")
HEADER = "ticket_no;opened;due_by;resolved;state;agency;crew;kind;borough;quarter;lat;lon;channel"
ROWS = [
    "RT-1001;03.11.2026 14:05;10.11.2026;07.11.2026 09:30;done;Roads;Crew 4;Pothole;Mitte;Altstadt;52.52;13.40;app",  # noqa: E501
    "RT-1002;13.11.2026 08:00;20.11.2026;;in progress;Parks;;Fallen tree;Nord;Hafen;52.55;13.38;phone",
    "RT-1003;28.10.2026 23:30;;;new;Roads;-;Streetlight;;n/a;0;0;web",
    "RT-1004;29.10.2026 10:00;30.10.2026;31.10.2026 12:00;done;Waste;Crew 1;Litter;Süd;Markt;;;app",
    "RT-1005;01.11.2026 09:00;15.11.2026;02.11.2026 10:00;withdrawn;Roads;Crew 2;Pothole;Mitte;Altstadt;52.51;13.41;phone",  # noqa: E501
    "RT-1006;02.11.2026 09:15;16.11.2026;;parked;Parks;Crew 7;Bench;Ost;Feld;52.50;13.45;app",
    "RT-1007;04.11.2026 11:00;05.11.2026;;new;Roads;Crew 4;test ticket;Mitte;Altstadt;52.52;13.40;web",
]


def local(text: str) -> datetime:
    return datetime.strptime(text, "%d.%m.%Y %H:%M").replace(tzinfo=BERLIN).astimezone(UTC)


def end_of(day: str) -> datetime:
    d = datetime.strptime(day, "%d.%m.%Y").date()
    return datetime.combine(d, time.max, tzinfo=BERLIN).astimezone(UTC)


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    path = tmp_path / "rivertown.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return path


def readme_profile(tmp_path: Path) -> Path:
    """The complete user-written profile the README shows, as a file."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Importing any city's export: profiles", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None, "the README lost its example profile"
    path = tmp_path / "rivertown.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    return path


def test_the_readmes_profile_imports_the_layout(tmp_path: Path, export: Path) -> None:
    result = load_cases(load_profile_file(readme_profile(tmp_path)), export)
    assert result.profile == "rivertown"
    assert [r.row_number for r in result.skipped] == [8]  # the desk's test ticket, skipped with the reason
    assert result.skipped[0].reason == "the desk's own test tickets" and not result.rejected
    by_id = {c.item_id: c for c in result.cases}
    assert list(by_id) == ["RT-1001", "RT-1002", "RT-1003", "RT-1004", "RT-1005", "RT-1006"]
    first = by_id["RT-1001"]
    assert first.reported_at == local("03.11.2026 14:05") == datetime(2026, 11, 3, 13, 5, tzinfo=UTC)
    assert first.deadline == end_of("10.11.2026") == datetime(2026, 11, 10, 22, 59, 59, 999999, tzinfo=UTC)
    assert first.closed_at == local("07.11.2026 09:30") and first.status == CaseStatus.CLOSED
    assert (first.department, first.unit, first.category, first.category_group) == (
        "Roads", "Crew 4", "Pothole", "Service desk"
    )  # fmt: skip
    assert (first.town, first.community, first.source, first.zone) == (
        "Mitte",
        "Altstadt",
        "app",
        "Europe/Berlin",
    )
    assert (first.lat, first.long) == (52.52, 13.40)
    # summer time ends on 2026-10-25: 28.10. 23:30 is CET (UTC+1), so 22:30 UTC
    third = by_id["RT-1003"]
    assert third.reported_at == datetime(2026, 10, 28, 22, 30, tzinfo=UTC) and third.deadline is None
    assert (third.unit, third.town, third.community) == (
        "Roads",
        "(unknown)",
        "(unknown)",
    )  # "-" and n/a blank
    assert third.lat is None and third.long is None  # 0: no location
    assert by_id["RT-1002"].unit == "Parks" and by_id["RT-1002"].status == CaseStatus.OPEN  # the chain
    assert by_id["RT-1004"].lat is None and by_id["RT-1004"].town == "Süd"
    assert by_id["RT-1005"].status == CaseStatus.CANCELLED and by_id["RT-1006"].status == CaseStatus.OPEN


def _apply_todo_edits(draft: str) -> str:
    """Make the edits the draft's comments ask for, and only those: place each status value marked
    TODO, and map the columns listed as not placed that belong to an item field."""
    lines = []
    for line in draft.splitlines():
        match = re.match(r'\s*# "(.+)": TODO open, closed, cancelled or referred_out', line)
        if match:
            line = f'    "{match.group(1)}": open'  # Rivertown parks a ticket it will come back to
        lines.append(line)
        if line.startswith("fields:"):
            lines.append("  community: quarter")  # listed as not placed: the quarter is the community
    return "\n".join(lines) + "\n"


def test_the_wizards_draft_imports_after_the_edits_its_comments_ask_for(tmp_path: Path, export: Path) -> None:
    draft = draft_profile(export, name="rivertown")
    data = yaml.safe_load(draft)
    assert data["delimiter"] == ";" and data["id"] == "ticket_no"
    assert data["zone"] == "Europe/Berlin"  # the nearest reference city to the coordinates
    assert "TODO check" in next(line for line in draft.splitlines() if line.startswith("zone:"))
    assert data["times"]["formats"] == ["%d.%m.%Y %H:%M", "%d.%m.%Y"]
    assert (data["times"]["reported_at"], data["times"]["deadline"], data["times"]["closed_at"]) == (
        "opened", "due_by", "resolved"
    )  # fmt: skip
    assert data["status"] == {
        "column": "state",
        "values": {"new": "open", "in progress": "open", "done": "closed", "withdrawn": "cancelled"},
    }
    assert '# "parked": TODO' in draft and "quarter" in draft.splitlines()[-1]
    fields = data["fields"]
    assert (fields["department"], fields["unit"], fields["category"], fields["town"], fields["source"]) == (
        "agency", "crew", "kind", "borough", "channel"
    )  # fmt: skip
    assert data["location"] == {"lat": "lat", "long": "lon", "zero_is_missing": True}

    # As drafted, import-report names what still fails: the status value it could not place.
    as_drafted = load_cases(parse_profile(data, "draft"), export)
    assert [(r.row_number, r.field) for r in as_drafted.rejected] == [(7, "state")]
    assert "'parked'" in as_drafted.rejected[0].reason

    edited = tmp_path / "draft.yaml"
    edited.write_text(_apply_todo_edits(draft), encoding="utf-8")
    drafted = load_cases(load_profile_file(edited), export)
    written = load_cases(load_profile_file(readme_profile(tmp_path)), export)
    assert not drafted.rejected

    def core(c: ImportedCase) -> tuple[object, ...]:
        return (c.item_id, c.reported_at, c.deadline, c.closed_at, c.status, c.department, c.category,
                c.town, c.community, c.lat, c.long, c.zone, c.source)  # fmt: skip

    # the user's profile also skips the test ticket and spells "-" as blank; the core fields agree
    assert [core(c) for c in drafted.cases if c.item_id != "RT-1007"] == [core(c) for c in written.cases]


def test_the_wizard_says_what_it_cannot_decide(tmp_path: Path) -> None:
    path = tmp_path / "bare.csv"
    path.write_text(
        "A,B,When\nx,1,2026-11-03T10:00:00+08:00\nx,2,2026-11-04T10:00:00+08:00\n", encoding="utf-8"
    )
    draft = draft_profile(path)
    assert "TODO set the area's IANA zone: the times carry offsets" in draft
    assert "TODO name the column of the problem's category" in draft
    assert yaml.safe_load(draft)["id"] == "B"  # the only column unique in the sample
    assert "# status: none found" in draft


REMOVE = object()
BAD_PROFILES = [
    ({"zone": REMOVE}, "zone: Field required"),
    ({"zone": "Mars/Olympus"}, "zone: 'Mars/Olympus' is not an IANA time zone"),
    (
        {"times": {"reported_at": "a", "formats": ["iso", "%Y-%Q"]}},
        "times.formats: item 1: '%Y-%Q' is not a strptime",
    ),
    (
        {"times": {"reported_at": "a", "formats": ["dd/mm/yyyy"]}},
        "times.formats: item 0: 'dd/mm/yyyy' is neither",
    ),
    ({"fields": {"category": {"column": "a", "constant": "b"}}}, "fields.category: give exactly one of"),
    ({"fields": {"category": "a", "colour": "b"}}, "fields.colour: Extra inputs are not permitted"),
    ({"status": {"column": "s", "values": {"Done": "finished"}}}, "status.values.Done: Input should be"),
    ({"name": "Bad Name"}, "name: String should match pattern"),
    ({"fields": {"category": {"column": "a", "numbered": "Ward"}}}, "numbered must contain {n}"),
    ({"id": {"constant": "x"}}, "id: the id comes from column or columns"),
    ({"encoding": "klingon"}, "encoding: 'klingon' is not a text encoding"),
    ({"delimiter": ";;"}, "delimiter: String should have at most 1 character"),
]


@pytest.mark.parametrize(("change", "message"), BAD_PROFILES, ids=[m.split(":")[0] for _, m in BAD_PROFILES])
def test_a_malformed_profile_is_refused_in_one_line_naming_the_key(
    change: dict[str, object], message: str
) -> None:
    good: dict[str, object] = {
        "name": "ok", "zone": "Europe/Berlin", "id": "a",
        "fields": {"category": "b"}, "times": {"reported_at": "c"},
    }  # fmt: skip
    assert parse_profile(good, "p.yaml").name == "ok"
    bad = {k: v for k, v in (good | change).items() if v is not REMOVE}
    with pytest.raises(ConfigurationError) as caught:
        parse_profile(bad, "p.yaml")
    text = str(caught.value)
    assert "\n" not in text and text.startswith("p.yaml: ") and message in text, text


def test_profile_files_that_are_not_profiles(tmp_path: Path) -> None:
    cases = {
        "repeated.yaml": ("name: a\nname: b\n", "key 'name' repeated (line 2)"),
        "broken.yaml": ("name: [a\n", "not valid YAML: line 2"),
        "list.yaml": ("- a\n- b\n", "(profile): expected a mapping of keys, found list"),
        "latin1.yaml": (b"name: caf\xe9\n", "not UTF-8"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            load_profile_file(path)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_profile_file(tmp_path / "absent.yaml")


def test_malformed_rows_are_named_by_row_and_column(tmp_path: Path, export: Path) -> None:
    spec = load_profile_file(readme_profile(tmp_path))
    bad = [
        "RT-2001;31.11.2026 10:00;;;new;Roads;;Pothole;;;;;app",  # row 2: no 31 November
        "RT-2002;01.11.2026 10:00;;;lost;Roads;;Pothole;;;;;app",  # row 3: an unknown state
        "RT-2003;01.11.2026 10:00;;;new;Roads;;Pothole;;;95.0;13.4;app",  # row 4: latitude past 90
        "RT-2004;01.11.2026 10:00;;;new;Roads;;" + "P" * 129 + ";;;;;app",  # row 5: a name past 128
        "RT-2005;01.11.2026 10:00;;;new;Roads;;Pot\x07hole;;;;;app",  # row 6: a control character
        "RT-2006;01.11.1880 10:00;;;new;Roads;;Pothole;;;;;app",  # row 7: before 1990
        ";01.11.2026 10:00;;;new;Roads;;Pothole;;;;;app",  # row 8: no id
        "RT-2001;01.11.2026 10:00;;;new;Roads;;Pothole;;;;;app",  # row 9: the id of row 2 (refused there)
        "RT-2009;01.11.2026 10:00;;;new",  # row 10: too few columns
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([HEADER, *bad]) + "\n", encoding="utf-8")
    result = load_cases(spec, path)
    assert [(r.row_number, r.field) for r in result.rejected] == [
        (2, "opened"), (3, "state"), (4, "lat"), (5, "kind"), (6, "kind"), (7, "opened"), (8, "Ticket_No"),
        (10, "(row)"),
    ]  # fmt: skip
    assert [c.row_number for c in result.cases] == [9]  # row 2 never became an item, so 9 is the first
    reasons = {r.row_number: r.reason for r in result.rejected}
    assert "'31.11.2026 10:00'" in reasons[2] and "'lost'" in reasons[3] and "90" in reasons[4]
    assert "128" in reasons[5] and "1990" in reasons[7] and "expected 13 columns, found 5" in reasons[10]
    with pytest.raises(ImportRowError, match="header lacks") as lacking:
        other = tmp_path / "other.csv"
        other.write_text("ticket;opened\nRT-1;01.11.2026 10:00\n", encoding="utf-8")
        load_cases(spec, other)
    assert lacking.value.field == "Ticket_No"


def test_repeated_ids_are_found_in_memory_and_on_disk() -> None:
    from duban.importers.profiles import SeenIds

    for limit in (1_000_000, 3):  # all in memory; spilled to the scratch SQLite file after 3
        seen = SeenIds(memory_ids=limit)
        try:
            assert seen.first_rows([("a", 2), ("b", 3), ("a", 4)]) == {4: 2}
            assert seen.first_rows([("c", 5), ("d", 6)]) == {}
            assert seen.first_rows([("e", 7), ("b", 8), ("e", 9), ("f", 10)]) == {8: 3, 9: 7}
            assert seen.first_rows([("d", 11), ("g", 12)]) == {11: 6}
        finally:
            seen.close()


def test_a_draft_still_marked_todo_where_a_column_belongs_says_so(export: Path) -> None:
    data = yaml.safe_load(draft_profile(export, name="rivertown"))
    data["id"] = "TODO"  # what the wizard writes when no column of the sample is unique
    with pytest.raises(ImportRowError) as refused:
        load_cases(parse_profile(data, "draft"), export)
    assert refused.value.field == "TODO"
    assert "the profile still says TODO where a column name belongs" in str(refused.value)
    assert "duban profile check" in str(refused.value)


def test_the_wizards_draft_of_the_boston_sample_reads_it_as_the_built_in_profile_does() -> None:
    """On a real export, the draft places the columns the built-in profile names (only the clock
    shift, which no sample can reveal, and the Ward spelling differ), and imports every row."""
    from helpers.paths import DATA

    boston = DATA / "boston311_2022_sample.csv"
    if not boston.is_file():
        pytest.skip(f"shared export missing: {boston}")
    data = yaml.safe_load(draft_profile(boston, name="boston-draft"))
    assert (data["zone"], data["id"], data["status"]["column"], data["label"]["column"]) == (
        "America/New_York", "CASE_ENQUIRY_ID", "CASE_STATUS", "OnTime_Status"
    )  # fmt: skip
    drafted = load_cases(parse_profile(data, "draft"), boston)
    built_in = load_profile_file(REPO / "duban/importers/builtin/boston311.yaml")
    local = built_in.model_copy(update={"times": built_in.times.model_copy(update={"clock": "local"})})
    reference = load_cases(local, boston)
    assert not drafted.rejected and len(drafted.cases) == len(reference.cases) == 4995

    def core(c: ImportedCase) -> tuple[object, ...]:
        return (c.item_id, c.category, c.category_group, c.department, c.unit, c.town, c.grid, c.status,
                c.reported_at, c.deadline, c.closed_at, c.city_on_time)  # fmt: skip

    assert [core(c) for c in drafted.cases] == [core(c) for c in reference.cases]
