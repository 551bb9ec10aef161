"""Paths the tests read: the repository, and the shared case records beside it (never copied in)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
BOSTON_SAMPLE = DATA / "boston311_2022_sample.csv"
LA_SUBSET = DATA / "la311_2017_subset.csv"
