"""Data shapes of a supervision item: registration, commands, timers and the item state.

These dataclasses cross the Temporal boundary (workflow input, signals, updates, continue-as-new), so
they hold only JSON-friendly values and aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

ESCALATION_LADDER = ("handling_unit", "department_head", "district_leader", "district_order", "city_order")
"""Rungs of the escalation ladder, level 0 first (DOMAIN.md "Time limits and escalation")."""

DEFAULT_WARNING_FRACTION = 0.75
"""Share of the time limit after which a deadline warning is raised (DOMAIN.md anchor: reminders at
50%/75%, ServiceNow practice). The rulebook issue makes this configurable per category."""


class Stage(StrEnum):
    """Where an item stands in the closed loop (GB/T 30428 family)."""

    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    RECTIFIED = "rectified"
    VERIFIED = "verified"
    CLOSED = "closed"
    CANCELLED = "cancelled"


TERMINAL_STAGES = frozenset({Stage.CLOSED, Stage.CANCELLED})


class CommandKind(StrEnum):
    """Commands an item accepts; each produces one past-tense event when legal."""

    DISPATCH = "dispatch"
    ACCEPT = "accept"
    SUBMIT_RECTIFICATION = "submit_rectification"
    VERIFY = "verify"
    CLOSE = "close"
    CANCEL = "cancel"


@dataclass
class Registration:
    """What registering an item needs. Deadlines are aware UTC datetimes or ``None`` (no deadline).

    ``deadline_origin`` says where the resolution deadline came from: ``"source"`` (the integrating
    system's own, e.g. Boston ``TARGET_DT``; it overrides any rule), ``"rule"`` or ``"none"``.
    """

    item_id: str
    category: str
    reported_at: datetime
    department: str = ""
    unit: str = ""
    category_group: str = ""
    town: str = ""
    community: str = ""
    grid: str = ""
    zone: str = "UTC"
    source: str = ""
    actor: str = "system:intake"
    response_deadline: datetime | None = None
    resolution_deadline: datetime | None = None
    deadline_origin: str = "none"
    warning_fraction: float = DEFAULT_WARNING_FRACTION


@dataclass
class ItemCommand:
    """A command for an item. ``command_id`` makes delivery idempotent: a repeat is applied once.

    ``occurred_at`` is when the act happened in the world (aware UTC); fields beyond ``actor`` are
    used by the kinds that need them (``unit`` for dispatch/accept/submit, ``passed`` for verify,
    ``reason`` for cancel).
    """

    command_id: str
    kind: str
    actor: str
    occurred_at: datetime
    department: str = ""
    unit: str = ""
    notes: str = ""
    evidence: list[str] = field(default_factory=list)
    passed: bool = True
    reason: str = ""


@dataclass
class Timer:
    """A durable business timer: at ``at`` (aware UTC) a warning or breach of ``milestone`` is due."""

    at: datetime
    kind: str  # "warn" | "breach"
    milestone: str  # "response" | "resolution"
    deadline: datetime


@dataclass
class CommandOutcome:
    """What became of one command: applied (with the events it produced) or rejected with a reason."""

    command_id: str
    applied: bool
    reason: str = ""
    event_types: list[str] = field(default_factory=list)


@dataclass
class ItemState:
    """The whole state of one item, as the workflow holds it (and carries across continue-as-new)."""

    registration: Registration
    stage: str = Stage.REGISTERED
    sequence: int = 0
    department: str = ""
    unit: str = ""
    timers: list[Timer] = field(default_factory=list)
    escalation_level: int = 0
    overdue: bool = False
    on_time: bool | None = None
    accepted_at: datetime | None = None
    rectified_by: str = ""
    closed_at: datetime | None = None
    applied_command_ids: list[str] = field(default_factory=list)
    rejected: list[CommandOutcome] = field(default_factory=list)

    @property
    def item_id(self) -> str:
        return self.registration.item_id

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL_STAGES
