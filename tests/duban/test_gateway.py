"""Issue 10: the gateway over real HTTP (uvicorn on a free port), the real dev server, the real
broker and both databases: an item through duban's API, another through Open311, read back."""

from __future__ import annotations

from datetime import UTC

from helpers.gateway import (
    EXPECTED_EVENTS,
    LIFECYCLE,
    REPORTED,
    RunningGateway,
    command,
    greenery_deadline,
    unique,
)

from events.store import EventStore

# REPORTED is 10:00 in Asia/Shanghai on the last working day before today. Greenery has 5 working
# days (the default rulebook, DOMAIN.md anchor): the close of business (17:30) of the 5th working
# day after the report's day, counted on the calendar file by ``greenery_deadline``.
GREENERY_DEADLINE_UTC = greenery_deadline().astimezone(UTC).isoformat()
GREENERY_DEADLINE_LOCAL = greenery_deadline().isoformat()


async def test_an_item_goes_through_the_api_and_reads_back_the_same_everywhere(
    gateway: RunningGateway,
) -> None:
    key, item = gateway.key(), unique("gw")
    async with gateway.http(key) as http:
        reg = {
            "item_id": item,
            "service_code": "greenery",
            "town": "xicheng",
            "reported_at": REPORTED,
            "actor": "wang",
            "description": "a fallen tree",
        }
        created = await http.post("/v1/items", json=reg)
        assert created.status_code == 201, created.text
        assert created.json()["department"] == "parks"  # the service's department in Xicheng
        assert created.json()["resolution_deadline"] == GREENERY_DEADLINE_UTC
        again = await http.post("/v1/items", json=reg)
        assert again.status_code == 200 and again.json()["created"] is False
        for n, (kind, role, fields) in enumerate(LIFECYCLE):
            done = await http.post(f"/v1/items/{item}/commands", json=command(kind, role, n, **fields))
            assert done.status_code == 200, done.text
            assert done.json()["applied"] is True
        shown = (await http.get(f"/v1/items/{item}")).json()
    stored = [e.event_type for e in EventStore(gateway.engine).read(item)]
    assert [e["event_type"] for e in shown["timeline"]] == stored
    assert [t for t in stored if not t.startswith(("Deadline", "Escalat"))] == EXPECTED_EVENTS
    assert shown["stage"] == "closed" and shown["on_time"] is True
    assert shown["resolution_deadline"] == GREENERY_DEADLINE_UTC
    actors = {e["actor"] for e in shown["timeline"][1:] if e["actor"].startswith("hotline")}
    assert actors == {"hotline/zhao", "hotline/li", "hotline/chen"}  # the integrator and its person
    row = await gateway.projected(item, "closed")
    assert row.department == "parks" and row.on_time is True
    async with gateway.http() as public:
        listed = (await public.get("/open311/v2/requests.json", params={"service_request_id": item})).json()
    assert [(r["status"], r["expected_datetime"], r["agency_responsible"]) for r in listed] == [
        ("closed", GREENERY_DEADLINE_LOCAL, "parks")
    ]
    assert listed[0]["description"] == "a fallen tree"


async def test_routing_by_category_and_town(gateway: RunningGateway) -> None:
    async with gateway.http(gateway.key()) as http:
        reg = {
            "item_id": unique("gw-nanhu"),
            "service_code": "greenery",
            "town": "nanhu",
            "reported_at": REPORTED,
            "actor": "wang",
        }
        created = await http.post("/v1/items", json=reg)
    assert created.status_code == 201, created.text
    assert created.json()["department"] == "forestry"  # the catalogue's route for greenery in Nanhu
