"""The stage an item shows: one rule shared by the item workflow (its memo, search attributes and
order roll-ups: ``workflows.item_model.ItemState.shown_stage``) and the read models
(``projections.evolve``), which may not import each other."""

from __future__ import annotations

from typing import Final

SUSPENDED: Final = "suspended"
"""What a suspended item (挂账) shows as its stage. Suspension is not a stage of the closed loop: the
item keeps the stage it resumes in, and shows this one meanwhile."""


def shown_stage(stage: str, suspended: bool) -> str:
    """The stage as users see it: ``suspended`` while the item is suspended, else ``stage``."""
    return SUSPENDED if suspended else str(stage)
