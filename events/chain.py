"""Hash chains over the event log: tamper evidence (issue 12).

Every stored event belongs to a stream, its ``item_id`` (an item, or one score adjustment or one
interview), and carries ``chain``: the SHA-256 of the previous event's chain followed by its own
``digest`` (the SHA-256 of its canonical encoding, ``events.codec.encode_event``). A stream starts
from ``genesis(item_id)``. So editing any byte of an event breaks its digest, and deleting,
inserting or reordering events breaks the links after it. A forger who rewrites a stream's tail
consistently is caught only against something kept outside that tail: a *seal*, the root over every
stream's head at a cut-off (``seal_root``), which closing a period stores (``events.seals``).

Everything here is plain SHA-256 over bytes, restated in the standalone verifier
(``duban/audit/standalone_verify.py``) so that an auditor need not trust duban's code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

GENESIS_PREFIX = b"duban-stream\x00"


def genesis(item_id: str) -> str:
    """The chain value before a stream's first event: SHA-256 of ``duban-stream\\0<item id>``."""
    return hashlib.sha256(GENESIS_PREFIX + item_id.encode("utf-8")).hexdigest()


def link(previous: str, digest: str) -> str:
    """The chain value of an event: SHA-256 of the previous chain value's 32 bytes and the event's
    digest's 32 bytes (both given in hex)."""
    return hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(digest)).hexdigest()


def seal_root(heads: Iterable[tuple[str, int, str]]) -> str:
    """The root over streams' heads ``(item_id, sequence, chain)``: SHA-256 of the lines
    ``<item id>\\t<sequence>\\t<chain>\\n`` (UTF-8), sorted by item id."""
    digest = hashlib.sha256()
    for item_id, sequence, chain in sorted(heads):
        digest.update(f"{item_id}\t{sequence}\t{chain}\n".encode())
    return digest.hexdigest()
