"""What the benchmarks start themselves: a free port and an embedded (Tansu) broker on it."""

from __future__ import annotations

import socket
import subprocess

from duban.stack.binaries import find_binary
from duban.stack.probes import wait_for_port


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_tansu(port: int) -> subprocess.Popen[bytes]:
    """A Tansu broker (memory storage) on 127.0.0.1:``port``, answering when this returns."""
    url = f"tcp://127.0.0.1:{port}"
    args = [
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = subprocess.Popen(
        [str(find_binary("tansu")), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port("127.0.0.1", port, 30)
    return proc
