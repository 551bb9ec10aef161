"""The auditors' toolkit (``duban audit``): exporting and verifying the chained event log, periods
recomputed from the log, item timelines checked against their workflow histories, live replay, and
SLA repair. ``standalone_verify.py`` verifies an export with the standard library alone."""
