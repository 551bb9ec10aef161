"""The memo and search-attribute upserts carry only what changed, and always their first field (so
each step upserts, as histories recorded before expect)."""

from __future__ import annotations

from workflows.item_memo import changed_only


def test_only_changed_fields_and_the_first_are_upserted() -> None:
    shown = {"stage": "dispatched", "light": "green", "unit": "U1", "extensions": 0}
    now = {"stage": "dispatched", "light": "yellow", "unit": "U1", "extensions": 0, "merged_into": None}
    assert changed_only(now, shown) == ["stage", "light", "merged_into"]  # merged_into: never shown yet


def test_the_first_upsert_of_a_run_carries_every_field() -> None:
    now = {"stage": "registered", "light": None, "unit": ""}
    assert changed_only(now, {}) == ["stage", "light", "unit"]


def test_nothing_changed_still_upserts_the_first_field() -> None:
    now = {"stage": "closed", "light": None}
    assert changed_only(now, dict(now)) == ["stage"]
