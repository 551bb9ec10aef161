"""Issue 10: the Open311 GeoReport v2 façade, read by a real Open311 client library (georeport, from
PyPI, as its users use it: JSON and XML) and written by a form POST as the spec describes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import georeport
from helpers.gateway import LIFECYCLE, RunningGateway, command

from duban.gateway.catalogue import load_catalogue
from events.store import EventStore


def catalogue_services() -> list[Any]:
    return load_catalogue().versions[0].services


async def test_the_client_library_lists_the_services_and_their_definitions(gateway: RunningGateway) -> None:
    for fmt in ("json", "xml"):
        client = georeport.GeoReport(f"{gateway.url}/open311/v2", output_format=fmt)
        services = await asyncio.to_thread(client.get_service_list)
        assert [s["service_code"] for s in services] == [s.code for s in catalogue_services()]
        definition = await asyncio.to_thread(client.get_service_definition, "litter")
        attributes = definition["attributes"]  # XML: <attributes><attribute>…, as xmltodict reads it
        codes = [a["code"] for a in (attributes["attribute"] if fmt == "xml" else attributes)]
        assert codes == ["town", "size"], fmt  # every service's town, then the catalogue's own


async def post_form(gateway: RunningGateway, fields: list[tuple[str, str]], fmt: str = "json") -> Any:
    form: dict[str, list[str]] = {}
    for name, value in fields:
        form.setdefault(name, []).append(value)
    async with gateway.http() as http:
        return await http.post(f"/open311/v2/requests.{fmt}", data=form)


async def test_a_request_posted_is_registered_routed_and_read_back_by_the_library(
    gateway: RunningGateway,
) -> None:
    key = gateway.key("citizen-app", kinds="register")
    fields = [
        ("api_key", key),
        ("service_code", "litter"),
        ("lat", "31.23"),
        ("long", "121.47"),
        ("description", "bags of rubbish by the bus stop"),
        ("attribute[town]", "dongcheng"),
        ("attribute[size]", "pile"),
        ("email", "a@example.org"),
        ("media_url", "https://example.org/p.jpg"),
    ]
    posted = await post_form(gateway, fields)
    assert posted.status_code == 200, posted.text
    [answer] = posted.json()
    request_id = answer["service_request_id"]
    assert answer["token"] == request_id and answer["service_notice"].startswith("to be resolved by")
    row = await gateway.projected(request_id, "registered")
    assert (row.category, row.department, row.town) == ("litter", "urban_management", "dongcheng")
    for fmt in ("json", "xml"):
        client = georeport.GeoReport(f"{gateway.url}/open311/v2", output_format=fmt)
        found = await asyncio.to_thread(client.get_service_request, request_id)
        request = found[0] if isinstance(found, list) else found
        assert request["service_request_id"] == request_id
        assert request["status"] == "open" and request["service_code"] == "litter"
        assert request["agency_responsible"] == "urban_management"
        assert request["media_url"] == "https://example.org/p.jpg"
        assert request["expected_datetime"].endswith("+08:00")  # local time of the item's zone
    async with gateway.http() as http:
        token = (await http.get(f"/open311/v2/tokens/{request_id}.json")).json()
        listed = (
            await http.get("/open311/v2/requests.json", params={"status": "open", "service_code": "litter"})
        ).json()
    assert token == [{"service_request_id": request_id, "token": request_id}]
    assert request_id in [r["service_request_id"] for r in listed]
    # The office takes it to close-out through duban's API; Open311 then shows it closed.
    async with gateway.http(gateway.key("office")) as http:
        for n, (kind, role, fields) in enumerate(LIFECYCLE):
            done = await http.post(f"/v1/items/{request_id}/commands", json=command(kind, role, n, **fields))
            assert done.status_code == 200 and done.json()["applied"], done.text
        shown = (await http.get(f"/v1/items/{request_id}")).json()
    assert shown["stage"] == "closed"
    assert [e["event_type"] for e in shown["timeline"]] == [
        e.event_type for e in EventStore(gateway.engine).read(request_id)
    ]
    await gateway.projected(request_id, "closed")
    async with gateway.http() as http:
        closed = (await http.get("/open311/v2/requests.json", params={"status": "closed"})).json()
    [mine] = [r for r in closed if r["service_request_id"] == request_id]
    assert mine["status"] == "closed" and mine["agency_responsible"] == shown["department"]
    expected = datetime.fromisoformat(mine["expected_datetime"])
    assert expected == datetime.fromisoformat(shown["resolution_deadline"])
    assert expected.utcoffset() == timedelta(hours=8)


async def test_open311_errors_use_the_spec_format_and_store_nothing(gateway: RunningGateway) -> None:
    key = gateway.key("citizen-app2", kinds="register")
    before = await gateway.settled_counts()
    base = [
        ("service_code", "litter"),
        ("lat", "31.2"),
        ("long", "121.4"),
        ("attribute[town]", "dongcheng"),
        ("attribute[size]", "bag"),
    ]
    cases = [
        (base, 403, "api_key"),  # no key
        ([("api_key", "dbk_000000000000_" + "x" * 43), *base], 403, "not known"),
        ([("api_key", key), *base[:-1]], 400, "attributes.size: is required"),
        ([("api_key", key), *base[:-1], ("attribute[size]", "huge")], 400, "must be one of bag, pile, truck"),
        ([("api_key", key), ("service_code", "nope"), *base[1:]], 400, "service_code"),
        ([("api_key", key), *base[:3], ("attribute[town]", "atlantis"), base[4]], 400, "town"),
        ([("api_key", key), base[0], ("lat", "91"), *base[2:]], 400, "lat: must be within"),
    ]
    for fields, status, words in cases:
        answer = await post_form(gateway, fields)
        assert answer.status_code == status, (fields, answer.text)
        [error] = answer.json()
        assert error["code"] == status and words in error["description"], error
    xml = await post_form(gateway, base, "xml")
    assert xml.status_code == 403 and b"<errors><error><code>403</code>" in xml.content
    async with gateway.http() as http:
        missing = await http.get("/open311/v2/requests/no-such-item.json")
        bad_date = await http.get("/open311/v2/requests.json", params={"start_date": "yesterday"})
    assert missing.status_code == 404 and bad_date.status_code == 400
    assert "start_date" in bad_date.json()[0]["description"]
    await asyncio.sleep(0.5)  # a refused request that had been stored would be projected by now
    assert gateway.counts() == before
