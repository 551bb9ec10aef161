"""Hypothesis strategies of hostile input: registrations, commands, event messages, adjustments.

Each strategy starts from a well-formed value and applies a few mutations: a text replaced by one
that is too long, holds NUL, a lone surrogate or a control character; a value of the wrong type; an
instant at the ends of time or without an offset; a field removed or one added; a repeated key.
Instants are written as placeholders (``"NOW+60"``) and realised against the server's clock when sent.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from workflows.item_model import Registration
from workflows.item_policy import apply_rulebook
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook

RULEBOOK = load_rulebook(DEFAULT_RULEBOOK_PATH)

BAD_TEXT = st.sampled_from(
    ["", " ", " pad ", "x" * 129, "x" * 300, "a\x00b", "\x00", "a\ud800b", "\udfff", "a\x1bb", "a\nb", "\x7f"]
)
TEXT = st.one_of(
    BAD_TEXT,
    st.text(st.characters(exclude_categories=()), max_size=12),  # any code point, surrogates too
    st.sampled_from(["PWD", "U1", "QA", "街道办", "O'Brien", "litter", "Asia/Shanghai", "Mars/Olympus"]),
)
WRONG_TYPE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2),
)
INSTANT = st.one_of(
    st.sampled_from(["NOW", "NOW-60", "NOW-86400", "NOW+60", "NOW+299", "NOW+400", "NOW+864000"]),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T20:00:00+00:00",
            "1989-12-31T23:59:59+00:00",
            "2100-01-01T00:00:00+00:00",
            "2026-11-02T09:00:00",  # naive
            "yesterday",
            "2026-13-45T99:99:99+00:00",
        ]
    ),
)


def realise(value: Any, now: datetime) -> Any:
    """``value`` with every ``"NOW±seconds"`` placeholder replaced by an ISO instant from ``now``."""
    if isinstance(value, str) and value.startswith("NOW"):
        return (now + timedelta(seconds=int(value[3:] or 0))).isoformat()
    if isinstance(value, dict):
        return {k: realise(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [realise(v, now) for v in value]
    return value


def numbered(value: Any, number: int) -> Any:
    """``value`` with its placeholder ids (``c#``, ``R#``, ``A#``) made ``hostile-c<number>`` and so
    on: unique, and never equal to the ids the other helpers make (``item_helpers.cmd``'s ``c<n>``)."""
    if isinstance(value, str) and value in ("c#", "R#", "A#"):
        return f"hostile-{value[0]}{number}"
    if isinstance(value, dict):
        return {k: numbered(v, number) for k, v in value.items()}
    if isinstance(value, list):
        return [numbered(v, number) for v in value]
    return value


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], texts: tuple[str, ...], instants: tuple[str, ...]) -> Any:
    """``base`` with zero to three mutations (see the module docstring)."""
    data = dict(base)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["text", "type", "instant", "drop", "add", "list"]))
        if action == "text" and texts:
            data[draw(st.sampled_from(texts))] = draw(TEXT)
        elif action == "type" and data:
            data[draw(st.sampled_from(sorted(data)))] = draw(WRONG_TYPE)
        elif action == "instant" and instants:
            data[draw(st.sampled_from(instants))] = draw(INSTANT)
        elif action == "drop" and data:
            data.pop(draw(st.sampled_from(sorted(data))))
        elif action == "add":
            data[draw(st.sampled_from(["colour", "evidences", "policy_", ""]))] = draw(WRONG_TYPE)
        elif action == "list":
            data[draw(st.sampled_from(["evidence", "departments"]))] = draw(
                st.one_of(TEXT, st.lists(TEXT, max_size=3), st.just(["a.jpg"] * 21))
            )
    return data


ROLE_OF = {
    "dispatch": "dispatcher", "accept": "handling_unit", "submit_rectification": "handling_unit",
    "verify": "inspector", "return": "handling_unit", "request_extension": "handling_unit",
    "approve_extension": "duty_chief", "reject_extension": "duty_chief", "suspend": "duty_chief",
    "resume": "duty_chief", "grid_call": "grid_worker", "report_in": "handling_unit",
    "rate_responder": "grid_worker",
}  # fmt: skip
"""Kinds the fuzzed items get, with the role that may issue each (no close, cancel or merge: the
items must stay open to take every command)."""
COMMAND_TEXTS = ("command_id", "kind", "actor", "department", "unit", "notes", "reason", "role", "location")


@st.composite
def command_payload(draw: st.DrawFn, ahead_ok: bool = True) -> Any:
    """The JSON of a command, id ``c#`` (``numbered`` makes it unique) unless mutated to an invalid one."""
    kind = draw(st.sampled_from([*ROLE_OF, "explode"]))
    base: dict[str, Any] = {
        "command_id": "c#",
        "kind": kind,
        "actor": draw(st.sampled_from(["centre:li", "unit:U1", "inspector:zhao", "grid:wang", "chief:chen"])),
        "occurred_at": draw(st.sampled_from(["NOW", "NOW-30"] + (["NOW+60"] if ahead_ok else []))),
        "role": ROLE_OF.get(kind, "dispatcher"),
        "unit": draw(st.sampled_from(["U1", "U2", "QA", "PWD", ""])),
        "department": draw(st.sampled_from(["UM", "PWD", "ISD", ""])),
        "evidence": draw(st.sampled_from([[], ["p1.jpg"], ["p1.jpg", "p2.jpg"]])),
        "reason": draw(st.sampled_from(["", "because", "parts on order"])),
        "departments": draw(st.sampled_from([[], ["PWD"], ["PWD", "ISD"]])),
        "new_deadline": draw(st.sampled_from([None, "NOW+86400", "NOW+864000"])),
        "rating": draw(st.integers(0, 6)),
        "passed": draw(st.booleans()),
    }
    data = draw(mutated(base, COMMAND_TEXTS, ("occurred_at", "new_deadline")))
    if not ahead_ok and isinstance(data.get("occurred_at"), str) and data["occurred_at"].startswith("NOW+"):
        data["occurred_at"] = "NOW+864000"  # an update dated just ahead would wait for a timer
    if "command_id" in data and isinstance(data["command_id"], str) and data["command_id"] != "c#":
        data["command_id"] = draw(BAD_TEXT.filter(lambda t: t.strip() == "" or len(t) > 128 or "\x00" in t))
    return data


def base_registration(item_id: str, rulebook: bool) -> dict[str, Any]:
    reg = Registration(item_id=item_id, category="litter", reported_at=datetime(2026, 11, 2, 1),
                       department="UM", unit="U1", town="Qiaotou", zone="Asia/Shanghai")  # fmt: skip
    data = json.loads(json.dumps(dataclasses.asdict(reg), default=str))
    data["reported_at"] = "NOW"
    if rulebook:
        policy = apply_rulebook(
            dataclasses.replace(reg, reported_at=datetime.now().astimezone()), RULEBOOK, "china"
        )
        data["policy"] = json.loads(json.dumps(dataclasses.asdict(policy.policy), default=str))
    else:
        data["resolution_deadline"] = "NOW+86400"
    return data


REGISTRATION_TEXTS = (
    "item_id", "category", "department", "unit", "category_group", "town", "community", "grid", "zone",
    "source", "actor", "deadline_origin", "urgency", "order_id", "district",
)  # fmt: skip


@st.composite
def registration_payload(draw: st.DrawFn) -> Any:
    """The JSON of a workflow input for item ``R#`` (its registration mutated)."""
    reg = draw(mutated(base_registration("R#", draw(st.booleans())), REGISTRATION_TEXTS,
                       ("reported_at", "resolution_deadline", "response_deadline")))  # fmt: skip
    if "policy" in reg and isinstance(reg["policy"], dict) and draw(st.booleans()):
        reg["policy"] = draw(mutated(reg["policy"], ("rulebook_version", "calendar", "yellow_threshold"), ()))
    extra = draw(
        st.sampled_from(
            [{}, {"continue_as_new_after": 0}, {"clock_offset_s": 1e300}, {"initial_commands": "x"}]
        )
    )
    return {"registration": reg, "search_attributes": False, **extra}


@st.composite
def event_message(draw: st.DrawFn, stored: list[bytes]) -> bytes:
    """A message for the events topic: a stored event, mutated (or, now and then, as it is)."""
    original = draw(st.sampled_from(stored))
    if draw(st.integers(0, 9)) == 0:
        return original  # a redelivery
    data = json.loads(original)
    envelope_texts = ("event_id", "event_type", "item_id", "actor", "correlation_id", "causation_id")
    data = draw(mutated(data, envelope_texts, ("occurred_at", "recorded_at")))
    if isinstance(data.get("payload"), dict) and draw(st.booleans()):
        payload = data["payload"]
        data["payload"] = draw(
            mutated(payload, tuple(k for k, v in payload.items() if isinstance(v, str)), ())
        )
    if draw(st.booleans()) and "sequence" in data:
        data["sequence"] = draw(st.sampled_from([0, -1, 2**31, 2**40, 10**7, "1", 1.5]))
    data = realise(data, datetime(2026, 11, 2).astimezone())
    raw = json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")
    shape = draw(st.sampled_from(["as is", "repeated key", "cut", "garbage"]))
    if shape == "repeated key":
        return b'{"actor": "forger", ' + raw[1:]
    if shape == "cut":
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if shape == "garbage":
        return draw(st.binary(max_size=64))
    return raw


ADJUST_VALID = {
    "--level": st.sampled_from(["department", "town", "category", "order"]),
    "--unit": st.sampled_from(["PWD", "U1", "街道办", "O'Brien"]),
    "--day": st.sampled_from(["2026-11-02", "2026-12-31", "1990-01-01"]),
    "--points": st.decimals(min_value=-1000, max_value=1000, places=2).map(str),
    "--reason": st.sampled_from(["late report", "迟报", "double counted"]),
    "--approver": st.sampled_from(["chief:chen", "office"]),
    "--id": st.just("A#"),
}
ADJUST_HOSTILE = {
    "--level": st.sampled_from(["county", "", "DEPARTMENT"]),
    "--unit": TEXT,
    "--day": st.sampled_from(["2026-11-31", "20261102", "1989-12-31", "2100-01-01", "", "today"]),
    "--points": st.sampled_from(
        ["1" * 40, "1.005", "NaN", "Infinity", "-0", "1e3", "lots", "", " 1", "1000.01"]
    ),
    "--reason": TEXT,
    "--approver": TEXT,
    "--id": st.sampled_from(["A0", "x" * 97, " pad", "a\x1bb", ""]),
}


@st.composite
def adjust_arguments(draw: st.DrawFn) -> list[str]:
    """Arguments of ``duban adjust``: valid values with none to three options made hostile (``A0``
    recurs, so the same id comes again with the same or other values)."""
    hostile = draw(st.sets(st.sampled_from(sorted(ADJUST_VALID)), max_size=3))
    args = ["adjust"]
    for option, valid in ADJUST_VALID.items():
        args += [option, draw(ADJUST_HOSTILE[option] if option in hostile else valid)]
    return args
