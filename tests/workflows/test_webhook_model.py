"""The pure part of webhooks: which events a subscription selects, and the signature's bytes."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from workflows.webhook_model import ItemPlace, Subscription, delivery_workflow_id, matches, signature_header

PLACE = ItemPlace(department="parks", town="xicheng", source="hotline")


def sub(**chosen: object) -> Subscription:
    fields: dict[str, object] = {
        "event_types": ("*",),
        "items": ("*",),
        "departments": ("*",),
        "towns": ("*",),
        "own_items": False,
    }
    return Subscription("abc", "hotline", "http://x/h", created_at=datetime.now(UTC), **(fields | chosen))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("chosen", "event_type", "item", "place", "selected"),
    [
        ({}, "ItemClosed", "i1", PLACE, True),
        ({"event_types": ("ItemClosed", "ItemEscalated")}, "ItemEscalated", "i1", PLACE, True),
        ({"event_types": ("ItemClosed",)}, "ItemDispatched", "i1", PLACE, False),
        ({"items": ("i1", "i2")}, "ItemClosed", "i2", PLACE, True),
        ({"items": ("i1",)}, "ItemClosed", "i3", PLACE, False),
        ({"departments": ("parks",)}, "ItemClosed", "i1", PLACE, True),
        ({"departments": ("housing",)}, "ItemClosed", "i1", PLACE, False),
        ({"towns": ("dongcheng",)}, "ItemClosed", "i1", PLACE, False),
        ({"own_items": True}, "ItemClosed", "i1", PLACE, True),
        ({"own_items": True}, "ItemClosed", "i1", ItemPlace("parks", "xicheng", "field-app"), False),
        ({"departments": ("parks",), "towns": ("xicheng",)}, "ItemClosed", "i1", PLACE, True),
    ],
)
def test_a_subscription_selects_by_every_selector_at_once(
    chosen: dict[str, object], event_type: str, item: str, place: ItemPlace, selected: bool
) -> None:
    assert matches(sub(**chosen), event_type, item, place) is selected


def test_the_signature_is_an_hmac_of_the_time_and_the_body() -> None:
    body = b'{"event":{"event_id":"e1"}}'
    header = signature_header("whsec_s3cret", 1_700_000_000, body)
    # Computed here by hand, as the README tells a receiver to.
    by_hand = hmac.new(b"whsec_s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={by_hand}"
    assert signature_header("whsec_s3cret", 1_700_000_001, body) != header


def test_delivery_ids_name_the_subscription_and_the_event() -> None:
    assert delivery_workflow_id("abc", "e1") == "webhook-abc-e1"
    assert delivery_workflow_id("abc", "e1", 1764750000) == "webhook-abc-e1-r1764750000"
