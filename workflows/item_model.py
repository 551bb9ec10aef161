"""Data shapes of a supervision item: registration, commands, timers and the item state.

These dataclasses cross the Temporal boundary (workflow input, signals, updates, continue-as-new), so
they hold only JSON-friendly values and aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from events.stages import shown_stage

ESCALATION_LADDER = ("handling_unit", "department_head", "district_leader", "district_order", "city_order")
"""Rungs of the escalation ladder, level 0 first (DOMAIN.md "Time limits and escalation")."""

DEFAULT_WARNING_FRACTION = 0.75
"""Share of the time limit after which a deadline warning is raised on an item registered without a
rulebook policy (DOMAIN.md anchor: reminders at 50%/75%, ServiceNow practice). Items registered under
a rulebook use its ``warning_thresholds`` instead (``workflows.item_policy``)."""

GREEN, YELLOW, RED = "green", "yellow", "red"
"""Traffic lights of the resolution deadline (DOMAIN.md anchor: green under 80% of the limit, yellow
80–100%, red past it)."""


RULES_REVISION = 2
"""Revision of the command rules a new item runs under. Revision 1 (items started before issue 8)
let an item registered without a rulebook be dispatched without a unit and rectified without
evidence, and merged into any id; the workflow keeps revision 1 for histories recorded before the
``rules-revision-2`` patch (README, "Changing workflow code")."""


class Stage(StrEnum):
    """Where an item stands in the closed loop (GB/T 30428 family)."""

    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    RECTIFIED = "rectified"
    VERIFIED = "verified"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    MERGED = "merged"


TERMINAL_STAGES = frozenset({Stage.CLOSED, Stage.CANCELLED, Stage.MERGED})
OPEN_STAGES = frozenset({Stage.REGISTERED, Stage.DISPATCHED, Stage.ACCEPTED, Stage.RECTIFIED, Stage.VERIFIED})


class CommandKind(StrEnum):
    """Commands an item accepts; each produces one past-tense event when legal."""

    DISPATCH = "dispatch"
    ACCEPT = "accept"
    SUBMIT_RECTIFICATION = "submit_rectification"
    VERIFY = "verify"
    CLOSE = "close"
    CANCEL = "cancel"
    RETURN = "return"  # 回退/改派: sent to the wrong unit, back for re-dispatch
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    REJECT_EXTENSION = "reject_extension"
    SUSPEND = "suspend"  # 挂账/缓办
    RESUME = "resume"
    MERGE = "merge"  # the duplicate is closed with a link to the surviving item
    GRID_CALL = "grid_call"  # 网格呼叫
    REPORT_IN = "report_in"  # 部门报到
    RATE_RESPONDER = "rate_responder"


class Role(StrEnum):
    """Who may issue which command (``workflows.item_checks.ROLES``, enforced on items registered
    under a rulebook). DOMAIN.md "Item lifecycle"."""

    DISPATCHER = "dispatcher"  # the centre that registers, dispatches, closes out, cancels, merges
    HANDLING_UNIT = "handling_unit"  # the responsible unit (also a department reporting in)
    INSPECTOR = "inspector"  # verifies on site
    DUTY_CHIEF = "duty_chief"  # approves a first extension, suspends and resumes
    DISTRICT_LEADER = "district_leader"  # approves a second extension
    GRID_WORKER = "grid_worker"  # calls departments to a grid item and rates them


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
    urgency: str = "normal"
    policy: ItemPolicy | None = None
    order_id: str = ""
    district: str = ""  # the leader-owned district (挂包) the item's town belongs to


@dataclass
class ItemCommand:
    """A command for an item. ``command_id`` makes delivery idempotent: a repeat is applied once.

    ``occurred_at`` is when the act happened in the world (aware UTC); ``role`` is the actor's role
    (``Role``; enforced on items registered under a rulebook). Fields beyond those are used by the
    kinds that need them: ``unit`` (the acting unit), ``department`` (dispatch, report in, rate),
    ``departments`` (grid call), ``evidence``/``notes``/``location`` (submit), ``passed`` (verify),
    ``reason`` (return, cancel, extension, suspend, merge), ``new_deadline`` (request extension, aware
    UTC), ``into_item_id`` (merge), ``rating`` (1–5, rate responder).
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
    role: str = ""
    location: str = ""
    new_deadline: datetime | None = None
    into_item_id: str = ""
    departments: list[str] = field(default_factory=list)
    rating: int = 0


@dataclass
class Timer:
    """A durable business timer due at ``at`` (aware UTC).

    ``kind``: ``warn`` (``subject`` = the threshold, e.g. ``"0.75"``), ``breach``, ``rung`` (the next
    escalation rung, ``subject`` = its name), ``review`` (periodic review of a suspension) or
    ``report_in`` (``subject`` = the department a grid call waits for). ``deadline`` is the deadline
    the timer belongs to.
    """

    at: datetime
    kind: str
    milestone: str  # "response" | "resolution" | "" (review, report_in)
    deadline: datetime
    subject: str = ""


@dataclass
class LimitSpec:
    """A time limit as JSON-friendly data: ``amount`` is a decimal string, ``unit`` one of the
    rulebook's (``working_hours``, ``working_days``, ``calendar_days``, ``hours``)."""

    amount: str
    unit: str


@dataclass
class RungSpec:
    """One escalation rung: reached ``delay`` after the previous rung (the first: after the breach)."""

    name: str
    delay: LimitSpec


@dataclass
class ItemPolicy:
    """The rules an item keeps for life: a copy of the rulebook version in force at registration.

    ``calendar`` names a working calendar (``workflows.item_policy.CALENDARS``). ``*_basis`` is
    ``working`` (the limit counts working time: suspensions and extensions keep working seconds) or
    ``clock`` (elapsed time). ``warning_thresholds`` are decimal strings in (0, 1), increasing; the
    light turns yellow at ``yellow_threshold``. See ``workflows.rulebook.Procedures`` for the rest.
    """

    rulebook_version: str
    calendar: str
    warning_thresholds: list[str]
    yellow_threshold: str
    ladder: list[RungSpec]
    redispatch_window: LimitSpec
    extension_approvers: list[str]
    suspension_review: LimitSpec
    report_in: LimitSpec
    response_basis: str = "clock"
    resolution_basis: str = "clock"


@dataclass
class MilestoneClock:
    """The running clock of one milestone (``response`` or ``resolution``).

    ``budget_s`` is the limit in seconds of the milestone's basis (working or clock seconds);
    ``used_s`` the seconds used before ``running_since`` (``None`` while suspended). ``deadline`` is
    when the budget runs out (aware UTC). ``fired`` lists the thresholds (``"0.50"``…) and
    ``"breach"`` already signalled; ``met_at`` is when the milestone was met.
    """

    name: str
    basis: str
    deadline: datetime
    budget_s: int
    used_s: int = 0
    running_since: datetime | None = None
    fired: list[str] = field(default_factory=list)
    met_at: datetime | None = None
    breached_at: datetime | None = None


@dataclass
class ExtensionRequest:
    """A pending extension request of the resolution deadline."""

    command_id: str
    requested_by: str
    requested_at: datetime
    requested_deadline: datetime
    reason: str
    number: int


@dataclass
class Responder:
    """A department called to a grid item; it stays on the item until the item is closed."""

    department: str
    called_by: str
    called_at: datetime
    report_in_deadline: datetime
    reported_in_at: datetime | None = None
    late: bool = False
    rating: int = 0


@dataclass
class CommandOutcome:
    """What became of one command: applied (with the events it produced) or rejected with a reason."""

    command_id: str
    applied: bool
    reason: str = ""
    event_types: list[str] = field(default_factory=list)


@dataclass
class ItemState:
    """The whole state of one item, as the workflow holds it (and carries across continue-as-new).

    ``rejected`` lists the newest refused commands with their reasons (at most
    ``events.bounds.MAX_REJECTED_KEPT``); ``rejected_total`` counts every refusal."""

    registration: Registration
    stage: str = Stage.REGISTERED
    sequence: int = 0
    department: str = ""
    unit: str = ""
    timers: list[Timer] = field(default_factory=list)
    clocks: list[MilestoneClock] = field(default_factory=list)
    light: str = GREEN
    ladder_anchor: datetime | None = None
    dispatched_at: datetime | None = None
    dispatched_by: str = ""
    redispatch_count: int = 0
    returned_units: list[str] = field(default_factory=list)
    rework_episodes: int = 0
    rectified_unit: str = ""
    extensions_granted: int = 0
    pending_extension: ExtensionRequest | None = None
    suspended_at: datetime | None = None
    suspension_reviews: int = 0
    suspended_seconds: int = 0
    responders: list[Responder] = field(default_factory=list)
    merged_into: str = ""
    escalation_level: int = 0
    overdue: bool = False
    on_time: bool | None = None
    accepted_at: datetime | None = None
    rectified_by: str = ""
    closed_at: datetime | None = None
    applied_command_ids: list[str] = field(default_factory=list)
    applied_kinds: dict[str, str] = field(default_factory=dict)
    last_command_at: datetime | None = None
    rejected: list[CommandOutcome] = field(default_factory=list)
    rejected_total: int = 0
    rules_revision: int = RULES_REVISION

    @property
    def item_id(self) -> str:
        return self.registration.item_id

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL_STAGES

    @property
    def suspended(self) -> bool:
        return self.suspended_at is not None

    @property
    def shown_stage(self) -> str:
        """The stage as users see it (memo, search attributes, order roll-ups): ``suspended``
        while the item is suspended, else its stage."""
        return shown_stage(self.stage, self.suspended)

    @property
    def shown_light(self) -> str | None:
        """The traffic light as users see it: only items under a rulebook have one (``None``)."""
        return self.light if self.registration.policy else None

    def clock(self, name: str) -> MilestoneClock | None:
        """The clock of milestone ``name``, or ``None`` if the item has no such deadline."""
        return next((c for c in self.clocks if c.name == name), None)
