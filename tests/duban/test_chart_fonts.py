"""Charts find the CJK font even when matplotlib's font cache predates its install (the cache lists
only what was installed when it was built): Chinese labels are drawn, not boxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from matplotlib import font_manager

from duban.documents.charts import CJK_FONT, font_family


@pytest.fixture
def stale_cache() -> Iterator[None]:
    """matplotlib's font list as a cache built before the CJK fonts were installed."""
    kept = list(font_manager.fontManager.ttflist)
    font_manager.fontManager.ttflist = [f for f in kept if "CJK" not in f.name]
    try:
        yield
    finally:
        font_manager.fontManager.ttflist = kept


def test_a_cjk_font_installed_after_the_cache_was_built_is_found(stale_cache: None) -> None:
    if not any("CJK" in Path(p).name for p in font_manager.findSystemFonts()):
        pytest.skip("no CJK font installed (.ci/run installs fonts-noto-cjk)")
    assert CJK_FONT not in {f.name for f in font_manager.fontManager.ttflist}
    assert font_family() == [CJK_FONT, "DejaVu Sans"]
    assert font_manager.findfont(CJK_FONT, fallback_to_default=False).endswith(".ttc")
