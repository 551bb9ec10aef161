"""The records of an export file, streamed: CSV rows, a JSON array's objects, an XML document's
requests (Open311 GeoReport v2 ``requests.json`` / ``requests.xml``), and Open311 ``services.json``.

Each reader yields ``(number, record)`` pairs, one record in memory at a time: for CSV the number
is the spreadsheet row (the header is row 1) and the record the list of cells; for JSON and XML it
is the record's position (from 1) and the record a dict of its keys, stripped and case-folded.
A record that cannot be read is yielded as :class:`Unreadable` (with the reason), never dropped.

JSON is read strictly: an object with a repeated key is refused (``json`` would keep the last
value silently), as are ``NaN`` and ``Infinity`` (not JSON). A syntax error ends the file: the
records before it stand, the broken one is reported, and the report says the rest was not read.
XML is parsed with ``defusedxml`` (no entities, no DTD, no external references).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from duban.errors import ImportRowError

MAX_RECORD_BYTES = 1 << 20
"""A JSON record larger than 1 MiB is refused: no real service request comes near it."""
CHUNK = 1 << 16


@dataclass(frozen=True)
class Unreadable:
    """A record that cannot be read: ``field`` is ``(row)``, ``(record)`` or the key at fault."""

    field: str
    reason: str
    final: bool = False  # nothing after it can be read


class _Counting(io.RawIOBase):
    """A binary file that reports every byte read to ``seen`` (for a progress bar)."""

    def __init__(self, raw: IO[bytes], seen: Callable[[int], object]) -> None:
        self._raw, self._seen = raw, seen

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._seen(len(data))
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path, seen: Callable[[int], object] | None, what: str) -> IO[bytes]:
    """Open ``path`` for reading bytes, counting them into ``seen`` (a progress bar) when given.

    Raises:
        FileNotFoundError: naming ``what`` (e.g. ``boston311 export``) and the path.
    """
    try:
        raw = Path(path).open("rb")  # noqa: SIM115 (the caller closes it, through the wrapper)
    except FileNotFoundError as exc:
        raise FileNotFoundError(exc.errno, f"{what} not found", str(path)) from None
    except IsADirectoryError as exc:
        raise FileNotFoundError(exc.errno, f"{what} is a directory, not a file", str(path)) from None
    return io.BufferedReader(_Counting(raw, seen), CHUNK) if seen else raw


def open_text(path: Path, encoding: str, seen: Callable[[int], object] | None, what: str) -> IO[str]:
    """Open ``path`` as text (``newline=""``, as the csv module wants); see :func:`open_binary`."""
    return io.TextIOWrapper(open_binary(path, seen, what), encoding=encoding, newline="")


def csv_records(handle: IO[str], path: Path, delimiter: str) -> Iterator[tuple[int, list[str] | Unreadable]]:
    """Yield (row number, cells or :class:`Unreadable`); row 1 is the header.

    Raises:
        ImportRowError: ``(encoding)``, when the bytes are not text in the profile's encoding (the
            whole file is then suspect: nothing after it could be trusted).
    """
    reader = csv.reader(handle, delimiter=delimiter)
    number = 0
    while True:
        number += 1
        try:
            cells: list[str] | Unreadable = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            cells = Unreadable("(row)", f"unreadable CSV record: {exc}")
        except UnicodeDecodeError as exc:
            raise ImportRowError("(encoding)", f"{path}: not UTF-8 text near row {number}: {exc}") from None
        yield number, cells


class _Repeated(dict[str, Any]):
    """An object in which a key was repeated (``repeated`` names it)."""

    repeated = ""


class _NotJSON:
    """``NaN``/``Infinity`` where a value stood (Python's json accepts them; JSON does not)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            bad = _Repeated(out)
            bad.repeated = key
            return bad
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_NotJSON)
_WHITESPACE = " \t\n\r"


def record_fields(record: dict[str, Any]) -> dict[str, Any] | Unreadable:
    """A decoded JSON object as a record: keys stripped and case-folded; refusals named."""
    if isinstance(record, _Repeated):
        return Unreadable(record.repeated, f"key {record.repeated!r} repeated in the record")
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = key.strip().casefold()
        if name in out:
            return Unreadable(key, f"keys {key!r} and another differ only in case or spaces")
        if isinstance(value, _Repeated):
            return Unreadable(key, f"key {value.repeated!r} repeated inside {key!r}")
        if isinstance(value, _NotJSON):
            return Unreadable(key, f"{value.text} is not a JSON value")
        out[name] = value
    return out


def json_records(handle: IO[str], path: Path) -> Iterator[tuple[int, dict[str, Any] | Unreadable]]:
    """Yield (position, record or :class:`Unreadable`) for each element of a JSON array.

    Raises:
        ImportRowError: ``(file)``, when the file does not start with a JSON array.
    """
    buffer, pos, eof = "", 0, False

    def more() -> bool:
        nonlocal buffer, pos, eof
        try:
            chunk = handle.read(CHUNK)
        except UnicodeDecodeError as exc:
            raise ImportRowError("(encoding)", f"{path}: not UTF-8 text: {exc}") from None
        buffer, pos = buffer[pos:] + chunk, 0
        eof = not chunk
        return bool(chunk)

    def skip_space() -> bool:
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                pos += 1
            if pos < len(buffer):
                return True
            if not more():
                return False

    if not skip_space() or buffer[pos] != "[":
        raise ImportRowError("(file)", f"{path}: expected a JSON array of records ([{{…}}, …])")
    pos += 1
    number, expect_value = 0, True
    while True:
        if not skip_space():
            yield number + 1, Unreadable("(record)", "the file ends inside the array", final=True)
            return
        if buffer[pos] == "]":
            if number and expect_value:
                yield number + 1, Unreadable("(record)", "a comma before the closing ]", final=True)
            return
        if not expect_value:
            if buffer[pos] != ",":
                yield number + 1, Unreadable("(record)", f"expected , or ] after record {number}", final=True)
                return
            pos, expect_value = pos + 1, True
            continue
        number += 1
        while True:
            try:
                value, end = _DECODER.raw_decode(buffer, pos)
                break
            except json.JSONDecodeError as exc:
                if len(buffer) - pos > MAX_RECORD_BYTES:
                    yield number, Unreadable("(record)", "larger than 1 MiB", final=True)
                    return
                if eof or not more():
                    reason = f"not valid JSON: {exc.msg} (the rest of the file is not read)"
                    yield number, Unreadable("(record)", reason, final=True)
                    return
        pos, expect_value = end, False
        if isinstance(value, dict):
            yield number, record_fields(value)
        else:
            yield number, Unreadable("(record)", f"expected an object, found {type(value).__name__}")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].strip().casefold()


def xml_records(handle: IO[bytes], path: Path, record_tag: str = "request") -> Iterator[tuple[int, Any]]:
    """Yield (position, record or :class:`Unreadable`) for each ``<request>`` under the root element
    (Open311: ``<service_requests><request>…</request></service_requests>``); a record's fields are
    its child elements' texts (an empty element: ``None``).

    Raises:
        ImportRowError: ``(file)``, when the document forbids itself (entities, a DTD).
    """
    number, depth = 0, 0
    try:
        for event, element in SafeET.iterparse(handle, events=("start", "end")):
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth != 1:
                continue
            number += 1
            if _local(element.tag) != record_tag:
                yield (
                    number,
                    Unreadable("(record)", f"expected <{record_tag}>, found <{_local(element.tag)}>"),
                )
            else:
                record: dict[str, Any] = {}
                repeated = ""
                for child in element:
                    name = _local(child.tag)
                    if name in record:
                        repeated = repeated or name
                    record[name] = _Nested(name) if len(child) else ((child.text or "").strip() or None)
                yield number, (Unreadable(repeated, f"element <{repeated}> repeated") if repeated else record)
            element.clear()
    except DefusedXmlException as exc:
        raise ImportRowError("(file)", f"{path}: refused XML: {type(exc).__name__}") from None
    except SafeET.ParseError as exc:
        yield (
            number + 1,
            Unreadable("(record)", f"not well-formed XML: {exc} (the rest is not read)", final=True),
        )


class _Nested:
    """An element with children where a value stood."""

    def __init__(self, name: str) -> None:
        self.name = name


def load_services(path: Path) -> dict[str, dict[str, str]]:
    """Open311 ``services.json``: ``service_code`` → its ``service_name``, ``group`` and
    ``description`` (text; others ignored). A service without a code, or repeated, is refused.

    Raises:
        ImportRowError: ``(services)`` naming the file and the service at fault.
        FileNotFoundError: the file does not exist.
    """
    out: dict[str, dict[str, str]] = {}
    with open_text(path, "utf-8-sig", None, "services file") as handle:
        for number, record in json_records(handle, path):
            if isinstance(record, Unreadable):
                raise ImportRowError("(services)", f"{path}: service {number}: {record.reason}")
            code = record.get("service_code")
            if not isinstance(code, str) or not code.strip():
                raise ImportRowError("(services)", f"{path}: service {number}: no service_code text")
            if code.strip() in out:
                raise ImportRowError("(services)", f"{path}: service {number}: {code!r} repeated")
            out[code.strip()] = {
                k: v.strip()
                for k in ("service_name", "group", "description")
                if isinstance(v := record.get(k), str)
            }
    return out
