"""Open311 GeoReport v2 imports (``--profile open311``) of the shared Bloomington and Chicago files.

Every record's expected fields are read here from the file with ``json.load`` and mapped by the
issue's rules (expected_datetime the deadline, updated_datetime the close of a closed request only,
lat/long 0 or null no location), independently of the importer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from helpers.paths import DATA
from typer.testing import CliRunner

from duban.cli import app
from duban.errors import ImportRowError
from duban.importers.base import CaseStatus, ImportedCase
from duban.importers.profiles import load_cases, load_profile, with_zone

OPEN311 = DATA / "open311"
BLOOMINGTON = OPEN311 / "bloomington_requests.json"
SERVICES = OPEN311 / "bloomington_services.json"
CHICAGO = OPEN311 / "chicago_requests_2014_sample.json"
needs_open311 = pytest.mark.skipif(not BLOOMINGTON.is_file(), reason=f"shared data missing: {OPEN311}")


def instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def expected(record: dict[str, Any], groups: dict[str, str]) -> dict[str, Any]:
    closed = record["status"] == "closed"
    lat, long = record.get("lat"), record.get("long")
    located = lat not in (None, 0) and long not in (None, 0)
    return {
        "item_id": record["service_request_id"],
        "status": CaseStatus.CLOSED if closed else CaseStatus.OPEN,
        "reported_at": instant(record["requested_datetime"]),
        "deadline": instant(record.get("expected_datetime")),
        "closed_at": instant(record["updated_datetime"]) if closed else None,
        "department": record["agency_responsible"],
        "category": record.get("service_name") or record["service_code"],
        "category_group": groups.get(record["service_code"], ""),
        "lat": lat if located else None,
        "long": long if located else None,
        "address": record.get("address") or "",
        "notes": record.get("status_notes") or "",
    }


def actual(case: ImportedCase) -> dict[str, Any]:
    return {
        "item_id": case.item_id, "status": case.status, "reported_at": case.reported_at,
        "deadline": case.deadline, "closed_at": case.closed_at, "department": case.department,
        "category": case.category, "category_group": case.category_group, "lat": case.lat,
        "long": case.long, "address": case.address, "notes": case.notes,
    }  # fmt: skip


@needs_open311
@pytest.mark.parametrize("name", ["bloomington", "chicago"])
def test_every_record_maps_as_the_file_says(name: str) -> None:
    path, services = (BLOOMINGTON, SERVICES) if name == "bloomington" else (CHICAGO, None)
    records = json.loads(path.read_text(encoding="utf-8"))
    groups = {s["service_code"]: s["group"] for s in json.loads(SERVICES.read_text())} if services else {}
    zone = "America/Indiana/Indianapolis" if name == "bloomington" else "America/Chicago"
    result = load_cases(with_zone(load_profile("open311"), zone), path, services)
    assert not result.rejected and result.rows_read == len(records) == len(result.cases)
    assert [actual(c) for c in result.cases] == [expected(r, groups) for r in records]
    assert {c.zone for c in result.cases} == {zone}
    if name == "bloomington":  # the file's facts: 3 closed, some without a location, no deadlines
        assert sum(c.status == CaseStatus.CLOSED for c in result.cases) == 3
        assert (
            sum(c.lat is None for c in result.cases) == sum(r.get("lat") in (None, 0) for r in records) == 8
        )
        assert all(c.deadline is None for c in result.cases)
    else:
        assert result.cases[1].notes == "Locked"


def to_xml(records: list[dict[str, Any]]) -> bytes:
    root = ET.Element("service_requests")
    for record in records:
        request = ET.SubElement(root, "request")
        for key, value in record.items():
            ET.SubElement(request, key).text = None if value is None else str(value)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8")


@needs_open311
def test_the_xml_form_reads_the_same(tmp_path: Path) -> None:
    records = json.loads(BLOOMINGTON.read_text(encoding="utf-8"))
    xml = tmp_path / "requests.xml"
    xml.write_bytes(to_xml(records))
    spec = with_zone(load_profile("open311"), "America/Indiana/Indianapolis")
    from_json = load_cases(spec, BLOOMINGTON, SERVICES)
    from_xml = load_cases(spec, xml, SERVICES)
    assert not from_xml.rejected
    assert [actual(c) for c in from_xml.cases] == [actual(c) for c in from_json.cases]


def test_json_is_read_strictly_record_by_record(tmp_path: Path) -> None:
    good = '"requested_datetime": "2014-07-12T10:58:43-05:00", "status": "open", "service_name": "Pothole"'
    lines = [
        '{"service_request_id": "A1", ' + good + "}",  # 1 good
        '{"service_request_id": "A2", "status": "closed", ' + good + "}",  # 2 a repeated key
        '{"service_request_id": 3, ' + good + "}",  # 3 a number where text belongs
        '{"service_request_id": "A4", "lat": "north", "long": 1.5, ' + good + "}",  # 4 not a number
        '{"service_request_id": "A5", "requested_datetime": "12/07/2014", "status": "open", "service_name": "x"}',  # noqa: E501
        '{"service_request_id": "A6", "lat": NaN, "long": 1, ' + good + "}",  # 6 NaN is not JSON
        '{"service_request_id": "A7", "status": {"code": "open"}, "requested_datetime": "2014-07-12T10:58:43Z"}',  # noqa: E501
        '"a string"',  # 8 not an object
        '{"service_request_id": "A9", "lat": true, "long": 1, ' + good + "}",  # 9 true is no coordinate
        '{"service_request_id": "A10", ' + good + "}",  # 10 good
        '{"service_request_id": "A11", "status": "op',  # 11 the file breaks off
    ]
    path = tmp_path / "requests.json"
    path.write_text("[\n" + ",\n".join(lines), encoding="utf-8")
    result = load_cases("open311", path)
    assert [c.item_id for c in result.cases] == ["A1", "A10"]
    got = [(r.row_number, r.field) for r in result.rejected]
    assert got == [
        (2, "status"), (3, "service_request_id"), (4, "lat"), (5, "requested_datetime"), (6, "lat"),
        (7, "status"), (8, "(record)"), (9, "lat"), (11, "(record)"),
    ]  # fmt: skip
    reasons = {r.row_number: r.reason for r in result.rejected}
    assert "repeated" in reasons[2] and "expected text, found a number" in reasons[3]
    assert "'north' is not a number" in reasons[4] and "'12/07/2014'" in reasons[5]
    assert "NaN is not a JSON value" in reasons[6] and "found an object" in reasons[7]
    assert "expected a number, found true/false" in reasons[9] and "not read" in reasons[11]
    assert result.rows_read == 11 == len(result.cases) + len(result.rejected)


def test_forbidden_or_foreign_files_are_refused_whole(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        "<service_requests><request><service_request_id>&b;</service_request_id></request></service_requests>",
        encoding="utf-8",
    )
    with pytest.raises(ImportRowError, match="refused XML") as caught:
        load_cases("open311", bomb)
    assert caught.value.field == "(file)"
    other = tmp_path / "object.json"
    other.write_text('{"service_requests": []}', encoding="utf-8")
    with pytest.raises(ImportRowError, match="expected a JSON array"):
        load_cases("open311", other)


@needs_open311
def test_import_report_on_open311_counts_records() -> None:
    done = CliRunner().invoke(
        app,
        [
            "import-report",
            str(BLOOMINGTON),
            "--profile",
            "open311",
            "--services",
            str(SERVICES),
            "--zone",
            "America/Indiana/Indianapolis",
        ],
    )
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == ["21 records read, 21 items, 0 rejected"]
    bad_zone = CliRunner().invoke(
        app, ["import-report", str(BLOOMINGTON), "--profile", "open311", "--zone", "Nowhere"]
    )
    assert bad_zone.exit_code == 2 and "zone: 'Nowhere' is not an IANA time zone" in bad_zone.stderr
