"""Text bound for a spreadsheet (the ledger's CSV and XLSX, the notices' XLSX), made safe to open.

A cell whose text begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or a carriage return) is read by
Excel, LibreOffice and Google Sheets as a formula: a unit or category name such as
``=HYPERLINK(...)`` from an integrating system would run when the office opens the file (CSV
injection, OWASP). ``neutralise`` prefixes such a text with a single quote, as OWASP advises, so it
shows as the text it is. Only text is touched: numbers, dates and booleans are written as themselves.
"""

from __future__ import annotations

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""The first characters that make a spreadsheet read a text cell as a formula (OWASP)."""


def neutralise(text: str) -> str:
    """``text`` as a spreadsheet should hold it: prefixed with ``'`` if it begins with one of
    ``FORMULA_TRIGGERS``, else unchanged."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text
