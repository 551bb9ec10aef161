"""The notices' charts with matplotlib: the rectification rate by week (a line) and the lights of open
items by department (stacked bars), as SVG (HTML, PDF) or PNG (DOCX).

Chinese labels need a CJK font: Noto Sans CJK SC (Debian's ``fonts-noto-cjk``, which ``.ci/run``
installs) is used when present, DejaVu Sans otherwise (Latin labels only).
"""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only
from matplotlib import font_manager
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

CJK_FONT = "Noto Sans CJK SC"
COLOURS = {"green": "#2e7d32", "yellow": "#f9a825", "red": "#c62828"}
MAX_BARS = 25
"""The lights chart shows the departments with the most open items, at most this many."""


def font_family() -> list[str]:
    """The font list the charts use: the CJK font first when it is installed. matplotlib lists the
    fonts its cache found when it was built; a CJK font installed since (``fonts-noto-cjk`` after
    the first chart) is looked for on disk and added, so Chinese labels are never drawn as boxes."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    if CJK_FONT not in installed:
        for path in font_manager.findSystemFonts():
            if "CJK" in Path(path).name:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # a file FreeType cannot read: skip it
                    continue
        installed = {f.name for f in font_manager.fontManager.ttflist}
    return [CJK_FONT, "DejaVu Sans"] if CJK_FONT in installed else ["DejaVu Sans"]


def cjk_font_missing() -> str | None:
    """Why Chinese text would show as empty boxes (no ``CJK_FONT`` on this machine, for the charts
    nor for the PDF's fontconfig), naming the package to install; ``None`` when the font is there."""
    if CJK_FONT in font_family():
        return None
    return (
        f"no CJK font ({CJK_FONT}) is installed: the Chinese text of this document shows as empty "
        "boxes; install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk), or use --lang en"
    )


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    plt.rcParams["font.family"] = font_family()
    plt.rcParams["svg.fonttype"] = "path"  # text as outlines: the SVG shows without the font
    fig = Figure(figsize=(width, height), dpi=110)
    return fig, fig.add_subplot()


def trend_chart(trend: list[dict[str, Any]], labels: dict[str, str]) -> Figure:
    """The rectification rate of each week, in percent (weeks without items are gaps)."""
    fig, ax = _figure(7.0, 2.8)
    weeks = [w["week"] for w in trend]
    values = [float(Decimal(w["value"]) * 100) if w["value"] is not None else float("nan") for w in trend]
    positions = list(range(len(weeks)))  # numbers, not categories: a week without items is a gap
    ax.plot(positions, values, marker="o", color="#1565c0")
    ax.set_xticks(positions, weeks)
    ax.set_title(labels["trend"])
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.grid(True, alpha=0.3)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    return fig


def lights_chart(lights: dict[str, dict[str, int]], labels: dict[str, str]) -> Figure:
    """Open items by department and light, stacked (the busiest departments, at most ``MAX_BARS``)."""
    chosen = sorted(lights.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:MAX_BARS]
    fig, ax = _figure(7.0, max(2.2, 0.32 * len(chosen) + 1.0))
    names = [name for name, _ in chosen][::-1]
    left = [0] * len(names)
    for light in ("green", "yellow", "red"):
        counts = [lights[name][light] for name in names]
        ax.barh(names, counts, left=left, color=COLOURS[light], label=labels[light])
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.set_title(labels["lights"])
    ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig


def as_svg(fig: Figure) -> str:
    """The figure as an SVG document (text drawn as paths)."""
    out = io.StringIO()
    fig.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]


def as_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (150 dpi)."""
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=150)
    return out.getvalue()
