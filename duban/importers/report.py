"""What an import did, in bounded memory: counts, and the refusals grouped by column and reason.

``ImportReport.add`` takes each outcome of ``read_outcomes`` as it streams by. Refusals are grouped
by column and the reason with its quoted values and row numbers blanked (``cannot read '…' as a
date-time``), so a million bad rows make one line: the count, the first rows, and the first reason
in full as an example. At most ``MAX_GROUPS`` groups are kept; the rest are counted together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from duban.importers.base import ImportedCase, RejectedRow

MAX_GROUPS = 200
FIRST_ROWS = 5
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBERED = re.compile(r"\b(row|record) \d+")


def reason_kind(reason: str) -> str:
    """A reason with its quoted values and row numbers blanked: what groups refusals."""
    return _NUMBERED.sub(r"\1 N", _QUOTED.sub("'…'", reason))


@dataclass
class RefusalGroup:
    """Refusals of one column and kind of reason: how many, the first rows, one reason in full."""

    column: str
    example: str
    count: int = 0
    rows: list[int] = field(default_factory=list)


@dataclass
class ImportReport:
    """Counts of an import and its refusals and skips, grouped (see the module docstring)."""

    rows_read: int = 0
    items: int = 0
    rejected: int = 0
    skipped: int = 0
    groups: dict[tuple[bool, str, str], RefusalGroup] = field(default_factory=dict)
    overflow: int = 0

    def add(self, outcome: ImportedCase | RejectedRow) -> None:
        """Count one outcome."""
        self.rows_read += 1
        if isinstance(outcome, ImportedCase):
            self.items += 1
            return
        if outcome.skipped:
            self.skipped += 1
        else:
            self.rejected += 1
        key = (outcome.skipped, outcome.field, reason_kind(outcome.reason))
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                self.overflow += 1
                return
            group = self.groups[key] = RefusalGroup(outcome.field, outcome.reason)
        group.count += 1
        if len(group.rows) < FIRST_ROWS:
            group.rows.append(outcome.row_number)

    def lines(self, word: str = "row") -> list[str]:
        """The report as text lines: a summary, then one line per group (refusals first, most
        frequent first): ``  <count> rows (<first rows>): <column>: <reason>``."""
        head = f"{self.rows_read} {word}s read, {self.items} items, {self.rejected} rejected"
        out = [head + (f", {self.skipped} skipped" if self.skipped else "")]
        ordered = sorted(self.groups.items(), key=lambda kv: (kv[0][0], -kv[1].count, kv[1].rows[0]))
        for (skipped, _, _), group in ordered:
            rows = ", ".join(str(r) for r in group.rows) + (", …" if group.count > len(group.rows) else "")
            plural = word if group.count == 1 else f"{word}s"
            kind = "skipped: " if skipped else ""
            out.append(f"  {group.count} {plural} ({rows}): {kind}{group.column}: {group.example}")
        if self.overflow:
            out.append(f"  {self.overflow} more {word}s refused for other reasons")
        return out
