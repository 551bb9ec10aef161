"""Background processes of the stack: pid files, logs, liveness, launch and stop.

Each process runs in its own session, logs to ``<data_dir>/logs/<name>.log`` and has its pid in
``<data_dir>/run/<name>.pid``; a pid counts as ours only while its command line still mentions the
spec's ``binary`` (so a recycled pid is not mistaken for it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from duban.config import Settings
from duban.errors import StackError

STOP_TIMEOUT_S = 15.0
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Processes started by this interpreter (judged by the command launched, not by ``/proc``)."""


@dataclass(frozen=True)
class Spec:
    """A background service: its name (pid and log file), a word of its command line (``binary``),
    its port (0: none) and further ports, and the setting that points duban at an external one."""

    name: str
    binary: str
    port: int
    extra_ports: tuple[int, ...] = ()
    env_var: str = ""


def pid_file(settings: Settings, name: str) -> Path:
    return settings.data_dir / "run" / f"{name}.pid"


def log_file(settings: Settings, name: str) -> Path:
    return settings.data_dir / "logs" / f"{name}.log"


def alive(pid: int, binary: str) -> bool:
    """Whether ``pid`` is a live (not zombie) process whose command line mentions ``binary``."""
    child = CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            # Our own child: judge by the command we launched (right after the fork, /proc may not
            # show the binary's command line yet).
            args = child.args
            return binary in (" ".join(map(str, args)) if isinstance(args, list | tuple) else str(args))
        CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            return binary in (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            return False
    return True


def read_pid(settings: Settings, spec: Spec) -> int | None:
    """The pid of our live process for ``spec``; a stale or unreadable pid file is removed."""
    path = pid_file(settings, spec.name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if alive(pid, spec.binary):
        return pid
    path.unlink(missing_ok=True)
    return None


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def launch(spec: Spec, cmd: list[str], settings: Settings, env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` in its own session, in the data dir, logging to the spec's log file, with
    ``env`` (default: this process's environment); record and return its pid."""
    log_path = log_file(settings, spec.name)
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        child = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=settings.data_dir,
            start_new_session=True,
            env=env,
        )
    CHILDREN[child.pid] = child
    pid_file(settings, spec.name).write_text(f"{child.pid}\n")
    return child.pid


def stop(settings: Settings, spec: Spec, pid: int) -> None:
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise StackError(f"cannot signal {spec.name} (pid {pid}): {exc}") from exc
        deadline = time.monotonic() + wait_s
        while alive(pid, spec.binary) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive(pid, spec.binary):
            break
    pid_file(settings, spec.name).unlink(missing_ok=True)
