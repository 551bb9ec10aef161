"""Reading an export's times as aware UTC instants, by a profile's time rules.

``TimeReader.read`` tries the profile's formats in order (``iso``: ``datetime.fromisoformat``; any
other: ``datetime.strptime``). A value with an offset is that instant. A value without one is a
wall time in the profile's zone, read with ``fold=0`` (an ambiguous autumn hour is its first,
daylight-time occurrence; a skipped spring time takes the offset in force before the change), and
under the ``shifted_by_utc_offset`` clock rule first corrected by :func:`unshift_clock`. A value
written without a time is a local date: a deadline means the end of that day (DOMAIN.md: a deadline
date is the whole day), a report or close time its start. Every instant must lie within the bounds
of ``events.bounds`` (1990–2100), so no later step sees an absurd time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from duban.errors import ImportRowError
from events.bounds import EARLIEST, LATEST, instant_problem

ISO = "iso"
CACHE_SIZE = 8192
"""Values remembered per reader (then forgotten all at once): exports repeat dates a lot."""
_TIME_DIRECTIVES = re.compile(r"%[-#]?[HIMSfpXTRcrzZ]")


def end_of_local_day(d: date, zone: str) -> datetime:
    """The last microsecond of local day ``d`` in IANA zone ``zone`` (23:59:59.999999), as aware UTC.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: if ``zone`` is not a known IANA zone name.
    """
    return datetime.combine(d, time.max, tzinfo=ZoneInfo(zone)).astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_WALL = datetime(1970, 1, 1)
_HOUR = timedelta(hours=1)
_EARLIEST, _LATEST = EARLIEST, LATEST
_TICK = timedelta(microseconds=1)


def wall_to_utc(wall: datetime, where: tzinfo) -> datetime:
    """A naive wall time in ``where`` as aware UTC, with ``fold=0`` at DST edges (as the wall time's
    own ``fold``, 0 when parsed). Equal to ``wall.replace(tzinfo=where).astimezone(UTC)``, in a third
    of the time (``datetime.replace`` with keywords is slow; ``bench/bench_import.py``)."""
    offset = where.utcoffset(wall)
    assert offset is not None
    return _EPOCH + (wall - offset - _EPOCH_WALL)


def local_instant(wall: datetime, zone: str) -> datetime:
    """Read a naive wall time in ``zone`` (``fold=0`` at DST edges) and return it as aware UTC.

    Raises:
        ValueError: if ``wall`` is already timezone-aware.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive wall time, got {wall.isoformat()}")
    return wall.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)


def unshift_clock(wall: datetime, zone: str = "America/New_York") -> datetime:
    """Turn a value of a clock-shifted export (Boston's, data README trap 1) into the true instant.

    The export took each true local wall time ``L``, read it as if it were UTC, and wrote that
    instant in local time: ``column = L - |UTC offset|``, 4 h earlier in summer (EDT) and 5 h in
    winter (EST). The offset is the one in force at the column's own wall time (rows closed at
    ``2022-03-13 01:46:05`` and ``2023-11-05 01:56:00`` carry closure texts that settle it). So the
    inverse is: localize the column in ``zone``, take that instant's UTC wall time as ``L``, localize
    ``L`` in ``zone``, convert to UTC. Both localizations use ``fold=0`` (the row closed at
    ``2023-11-05 01:56:00`` confirms the first occurrence of an ambiguous hour).

    Args:
        wall: a naive datetime as written in the export.
        zone: the export's IANA zone.

    Returns:
        An aware datetime in UTC, to the same precision as ``wall``.

    Raises:
        ValueError: if ``wall`` is already timezone-aware.
    """
    if wall.tzinfo is not None:
        raise ValueError(f"expected a naive wall time, got {wall.isoformat()}")
    where = ZoneInfo(zone)
    true_local = wall_to_utc(wall.replace(fold=0), where).replace(tzinfo=None)
    return wall_to_utc(true_local, where)


def has_time(fmt: str) -> bool:
    """Whether a ``strptime`` format reads a time of day (``%H``, ``%I``, ``%M``, …) or an offset."""
    return fmt == ISO or _TIME_DIRECTIVES.search(fmt) is not None


class TimeReader:
    """Reads one profile's times (see the module docstring).

    Args:
        formats: ``strptime`` formats or ``iso``, tried in order.
        zone: the IANA zone of wall times without an offset.
        shifted_clock: apply :func:`unshift_clock` to wall times (the ``shifted_by_utc_offset`` rule).
        deadline_date_only_end: a deadline written as a date means the end of that local day (else
            its start).
        midnight_is_date_only: a deadline at exactly 00:00:00 is a date written as a time (LA).
    """

    def __init__(
        self,
        formats: Sequence[str],
        zone: str,
        *,
        shifted_clock: bool = False,
        deadline_date_only_end: bool = True,
        midnight_is_date_only: bool = False,
    ) -> None:
        self.formats = tuple(formats)
        self.zone = zone
        self._tz: tzinfo = ZoneInfo(zone)
        self.shifted_clock = shifted_clock
        self.deadline_date_only_end = deadline_date_only_end
        self.midnight_is_date_only = midnight_is_date_only
        expected = ", ".join("ISO 8601" if f == ISO else f for f in self.formats)
        self._expected = f"expected {'one of ' if len(self.formats) > 1 else ''}{expected}"
        self._caches: tuple[dict[str, datetime | str], dict[str, datetime | str]] = ({}, {})
        self._formats = [(None if f == ISO else f, has_time(f)) for f in self.formats]
        self.instant: Callable[[str, bool], datetime | str] = (
            self._iso_fast() if self.formats == (ISO,) else self._cached
        )
        """``instant(text, deadline)``: the instant, or why there is none (a ``str``)."""

    def read(self, text: str, column: str, *, deadline: bool = False) -> datetime:
        """The instant ``text`` (already stripped, not blank) means, as aware UTC.

        Raises:
            ImportRowError: naming ``column``: no format reads it, or the instant is out of bounds.
        """
        found = self.instant(text, deadline)
        if found.__class__ is str:
            raise ImportRowError(column, str(found))
        return found  # type: ignore[return-value]

    def _cached(self, text: str, deadline: bool) -> datetime | str:
        """``_read``, remembered: exports repeat dates a lot (LA's), and ``strptime`` is slow."""
        cache = self._caches[deadline]
        found = cache.get(text)
        if found is None:
            found = self._read(text, deadline)
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[text] = found
        return found

    def _iso_fast(self) -> Callable[[str, bool], datetime | str]:
        """For the formats ``[iso]`` with the local or the shifted clock: the common value (a wall
        time with a time of day, no offset, in range) read with no detour; anything else goes to
        ``_cached``, which says the same for it."""
        offset, general = self._tz.utcoffset, self._cached
        shifted, parse = self.shifted_clock, datetime.fromisoformat

        def instant(text: str, deadline: bool) -> datetime | str:
            if len(text) <= 10:
                return general(text, deadline)
            try:
                value = parse(text)
            except ValueError:
                return general(text, deadline)
            if value.tzinfo is not None or not 1900 <= value.year <= 2200:
                return general(text, deadline)
            if deadline and self.midnight_is_date_only and not (value.hour or value.minute or value.second):
                return general(text, deadline)
            if shifted:
                value = value - offset(value)  # type: ignore[operator]
            found = _EPOCH + (value - offset(value) - _EPOCH_WALL)  # type: ignore[operator]
            return found if _EARLIEST <= found < _LATEST else general(text, deadline)

        return instant

    def _offset(self, wall: datetime) -> timedelta:
        """The zone's UTC offset at naive wall time ``wall`` (its ``fold``, 0 when parsed)."""
        offset = self._tz.utcoffset(wall)
        assert offset is not None
        return offset

    def _read(self, text: str, deadline: bool) -> datetime | str:
        value = None
        for fmt, timed in self._formats:
            try:
                value = datetime.fromisoformat(text) if fmt is None else datetime.strptime(text, fmt)
            except ValueError:
                continue
            date_only = len(text) <= 10 if fmt is None else not timed
            break
        if value is None:
            return f"cannot read {text[:64]!r} as a date-time ({self._expected})"
        if not 1900 <= value.year <= 2200:  # far from datetime's ends, where zone conversion overflows
            return f"{text[:64]!r}: must lie from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)"
        if value.tzinfo is not None:
            instant = value.astimezone(UTC)
        else:
            if deadline and self.midnight_is_date_only and value.time() == time(0, 0):
                date_only = True
            if date_only:
                day_time = time.max if deadline and self.deadline_date_only_end else time.min
                instant = datetime.combine(value.date(), day_time, tzinfo=self._tz).astimezone(UTC)
            elif self.shifted_clock:  # unshift_clock, with the zone at hand
                true_local = value - self._offset(value)
                instant = _EPOCH + (true_local - self._offset(true_local) - _EPOCH_WALL)
            else:
                instant = _EPOCH + (value - self._offset(value) - _EPOCH_WALL)
        if EARLIEST <= instant < LATEST:
            return instant
        return f"{text[:64]!r}: {instant_problem(instant)}"
