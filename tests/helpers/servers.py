"""Servers the tests start themselves: free ports, and a Tansu broker that can be killed and restarted."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path
from typing import Any

from duban.stack.binaries import find_binary
from duban.stack.probes import wait_for_port


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago (bound together, then
    released: another process may take one before the caller does, rarely)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class Tansu:
    """A Tansu broker (memory storage: it keeps nothing across a restart) on ``port``."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port, self.log_path = port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        args = ["broker", "--listener-url", url, "--advertised-listener-url", url]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(find_binary("tansu")), *args, "--storage-engine", "memory://tansu/"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port("127.0.0.1", self.port, 30)

    def kill(self) -> None:
        """SIGKILL, as a crash would: everything the broker held is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


async def topics_ready(settings: Any, attempts: int = 40) -> None:
    """Create ``settings``' topics, retrying for up to ``attempts`` × 0.25 s: a broker's port answers a
    moment before it serves requests."""
    from duban.stack.probes import ensure_topics

    for attempt in range(attempts):
        try:
            await ensure_topics(settings)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.25)
