"""Golden histories: histories recorded from real runs (``tests/histories/*.json``, made by
``tests/histories/record_histories.py`` on the dev server) must replay with the current workflow code.

A change that would break running items — removing a timer, removing an activity — makes replay
fail; the last two tests make exactly those changes and check that replay notices.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import REPO
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from duban.processes.worker import workflow_runner
from workflows import item_rules, item_timers
from workflows.item_workflow import SupervisionItemWorkflow
from workflows.order_workflow import SupervisionOrderWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    data = json.loads(path.read_text())
    workflow_id = data["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"]
    return WorkflowHistory.from_json(workflow_id, data)


def replayer() -> Replayer:
    return Replayer(
        workflows=[SupervisionItemWorkflow, SupervisionOrderWorkflow], workflow_runner=workflow_runner()
    )


def test_there_are_golden_histories_with_timers_and_activities() -> None:
    assert {p.stem for p in HISTORIES} >= {
        "closed_on_time",
        "breached_and_escalated",
        "governed_lifecycle",
        "governed_exceptions",
        "continued_as_new",
        "order_member",
        "order_workflow",
        "revision_two",
        "local_recording",
    }
    text = (Path(__file__).parent / "histories" / "breached_and_escalated.json").read_text()
    assert "TIMER_FIRED" in text and "ACTIVITY_TASK_COMPLETED" in text


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_golden_history_replays(path: Path) -> None:
    await replayer().replay_workflow(load(path))


async def _fails_after(patch: Callable[[], None], path: Path) -> None:
    patch()
    with pytest.raises(Exception, match=r"(?i)nondetermin|TMPRL1100"):
        await replayer().replay_workflow(load(path))


async def test_replay_fails_when_an_activity_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_activity(*_args: Any, **_kwargs: Any) -> None:
        return None

    activity: Callable[..., Awaitable[None]] = no_activity
    path = Path(__file__).parent / "histories" / "closed_on_time.json"
    await _fails_after(lambda: monkeypatch.setattr(workflow, "execute_activity", activity), path)


async def test_replay_fails_when_a_timer_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(__file__).parent / "histories" / "breached_and_escalated.json"
    await _fails_after(lambda: monkeypatch.setattr(item_rules, "next_timer_at", lambda _state: None), path)


async def test_replay_fails_when_the_escalation_rungs_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rulebook item's ladder (two rungs, each a durable timer) is part of its recorded history."""
    path = Path(__file__).parent / "histories" / "governed_lifecycle.json"
    original = item_timers._ladder
    await _fails_after(lambda: monkeypatch.setattr(item_timers, "_ladder", lambda s: original(s)[:0]), path)


def test_a_fresh_worker_process_replays_a_rulebook_item() -> None:
    """A new process has no calendar cached: the worker must build it outside the sandbox."""
    code = (
        "import asyncio, sys; sys.path[:0] = ['tests', 'tests/workflows'];"
        "from test_golden_histories import load, replayer, Path;"
        "asyncio.run(replayer().replay_workflow(load(Path('tests/workflows/histories/governed_lifecycle.json'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


async def test_replay_fails_when_the_order_notification_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An order's item signals the order (a command in its history) whenever its summary changes."""
    path = Path(__file__).parent / "histories" / "order_member.json"

    async def silent(self: SupervisionItemWorkflow) -> None:
        return None

    await _fails_after(lambda: monkeypatch.setattr(SupervisionItemWorkflow, "_tell_order", silent), path)


async def test_the_revision_two_history_needs_its_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replayed as if its marker were absent (rules revision 1), the revision-2 history diverges: the
    merge-target lookup it recorded would not be scheduled."""
    path = Path(__file__).parent / "histories" / "revision_two.json"
    assert '"id":"rules-revision-2"' in base64_markers(path)
    await _fails_after(lambda: monkeypatch.setattr(workflow, "patched", lambda _id: False), path)


async def test_the_local_recording_history_needs_its_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replayed as if the ``record-events-local`` marker were absent, the history diverges: an
    activity would be scheduled where it recorded a local activity's marker."""
    path = Path(__file__).parent / "histories" / "local_recording.json"
    assert '"id":"record-events-local"' in base64_markers(path)
    real = workflow.patched
    without = lambda i: i != "record-events-local" and real(i)  # noqa: E731
    await _fails_after(lambda: monkeypatch.setattr(workflow, "patched", without), path)


@pytest.mark.parametrize("name", ["closed_on_time", "local_recording"])
def test_the_audit_finds_every_recorded_step_in_either_kind_of_history(name: str) -> None:
    """``duban audit item`` reads a step's events from an activity's input (histories recorded before
    the local recording) or from a local activity's marker: in both, one unbroken stream from the
    registration to the close, as many events as the history's record_events steps carried."""
    from duban.audit.timeline import _scheduled_events

    history = load(Path(__file__).parent / "histories" / f"{name}.json")
    found = _scheduled_events(history)
    raw = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())
    kind = "MARKER_RECORDED" if name == "local_recording" else "ACTIVITY_TASK_SCHEDULED"
    steps = [e for e in raw["events"] if e["eventType"].endswith(kind)]
    if name == "local_recording":
        steps = [e for e in steps if "result" in e["markerRecordedEventAttributes"]["details"]]
    assert len(steps) >= 4
    assert [e["sequence"] for e in found] == list(range(1, len(found) + 1))
    assert found[0]["event_type"] == "ItemRegistered" and found[-1]["event_type"] == "ItemClosed"


@pytest.mark.parametrize("name", ["closed_on_time", "local_recording"])
def test_the_audit_notes_what_it_cannot_read_in_a_tampered_history_and_reads_the_rest(name: str) -> None:
    """A history whose recordings were altered (a payload that is not JSON, one that is not an
    object, events that are not a list) is no crash for ``duban audit item``: each altered
    recording is noted with its history event id, every other recording is read."""
    from duban.audit.timeline import HistoryCheck, _scheduled_events

    path = Path(__file__).parent / "histories" / f"{name}.json"
    intact = len(_scheduled_events(load(path)))
    raw = json.loads(path.read_text())
    carriers = []  # the payload lists of the recordings, in history order
    for event in raw["events"]:
        scheduled = event.get("activityTaskScheduledEventAttributes", {})
        if scheduled.get("activityType", {}).get("name") == "record_events":
            carriers.append((event["eventId"], scheduled["input"]))
        details = event.get("markerRecordedEventAttributes", {}).get("details", {})
        if "result" in details:
            carriers.append((event["eventId"], details["result"]))
    assert len(carriers) >= 4
    tampered = {}
    for (event_id, payloads), data in zip(
        carriers[1:4], [b"\xff\x00", b"[1, 2]", b'{"events": "x"}'], strict=True
    ):
        lost = json.loads(base64.b64decode(payloads["payloads"][0]["data"])).get("events", [])
        payloads["payloads"][0]["data"] = base64.b64encode(data).decode()
        tampered[str(event_id)] = len(lost)
    check = HistoryCheck()
    workflow_id = raw["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"]
    found = _scheduled_events(WorkflowHistory.from_json(workflow_id, raw), check.unreadable)
    assert len(found) == intact - sum(tampered.values())
    assert sorted(
        u.split(",")[0].split(":")[0].removeprefix("history event ") for u in check.unreadable
    ) == sorted(tampered)
    assert not check.ok and f"{len(tampered)} unreadable" in check.summary()


def base64_markers(path: Path) -> str:
    """The decoded details of the history's marker events (patch markers carry their id there)."""
    out = []
    for event in json.loads(path.read_text())["events"]:
        details = event.get("markerRecordedEventAttributes", {}).get("details", {})
        out += [base64.b64decode(p["data"]).decode() for v in details.values() for p in v.get("payloads", [])]
    return "\n".join(out)


PLAIN_REPLAY = """
import asyncio, json, sys
from pathlib import Path
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from workflows.item_workflow import SupervisionItemWorkflow
from workflows.order_workflow import SupervisionOrderWorkflow

async def main() -> None:
    replayer = Replayer(workflows=[SupervisionItemWorkflow, SupervisionOrderWorkflow])  # default sandbox
    for path in sys.argv[1:]:
        data = json.loads(Path(path).read_text())
        wid = data["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"]
        await replayer.replay_workflow(WorkflowHistory.from_json(wid, data))
        print("replayed", Path(path).stem)
    print("imported:", sorted(m for m in ("holidays", "sqlalchemy", "aiokafka", "duban") if m in sys.modules))

asyncio.run(main())
"""


def test_every_golden_history_replays_in_the_sdks_default_sandbox_without_holidays_sql_or_kafka() -> None:
    """What an auditor's plain ``Replayer`` does, in a fresh interpreter (nothing warmed or imported
    by other tests): the workflows read calendars as data and call activities by contract."""
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_REPLAY, *map(str, HISTORIES)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("replayed ", "imported:"))]
    assert lines == [*(f"replayed {p.stem}" for p in HISTORIES), "imported: []"], done.stdout[-3000:]
