"""Import of real case records (municipal 311 exports) as supervision items.

Each profile turns one export format into :class:`ImportedCase` values, and reports every row it
cannot use as a :class:`RejectedRow` (row number and reason). See ``duban.importers.base``.
"""
