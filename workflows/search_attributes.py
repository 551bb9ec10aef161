"""Custom search attributes that operators use in the Temporal UI to find supervision items.

The embedded dev server registers them at start (``duban stack up``); a production cluster needs
``temporal operator search-attribute create`` for each (see README). Values carry no personal data.
The time-skipping test server rejects custom attributes, so workflows upsert them only when their
input says the server has them.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

DEPARTMENT = SearchAttributeKey.for_keyword("DubanDepartment")
TOWN = SearchAttributeKey.for_keyword("DubanTown")
COMMUNITY = SearchAttributeKey.for_keyword("DubanCommunity")
CATEGORY = SearchAttributeKey.for_keyword("DubanCategory")
STAGE = SearchAttributeKey.for_keyword("DubanStage")
DEADLINE = SearchAttributeKey.for_datetime("DubanDeadline")
OVERDUE = SearchAttributeKey.for_bool("DubanOverdue")
ESCALATION_LEVEL = SearchAttributeKey.for_int("DubanEscalationLevel")
LIGHT = SearchAttributeKey.for_keyword("DubanLight")
ORDER = SearchAttributeKey.for_keyword("DubanOrder")

ALL_KEYS = (DEPARTMENT, TOWN, COMMUNITY, CATEGORY, STAGE, DEADLINE, OVERDUE, ESCALATION_LEVEL, LIGHT, ORDER)

_CLI_TYPE = {
    "KEYWORD": "Keyword",
    "DATETIME": "Datetime",
    "BOOL": "Bool",
    "INT": "Int",
}


def dev_server_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``, one pair per key."""
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPE[key.indexed_value_type.name]}"]
    return flags
