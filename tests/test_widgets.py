"""memory_explorer: built and driven programmatically (real ipywidgets objects, no browser or kernel)."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import pytest

from zcnb.analysis import assess_leak
from zcnb.commands.analyze import load_samples
from zcnb.exceptions import AnalysisError
from zcnb.viz.widgets import MemoryExplorer, memory_explorer

SERIES = Path(__file__).parent / "data" / "series"


def _png(w: MemoryExplorer) -> str:
    return str(w.plot.outputs[0]["data"]["image/png"])


def test_window_and_source_changes_reassess_and_redraw() -> None:
    df = load_samples(SERIES / "warmup_plateau.csv")
    w = memory_explorer(df, available_bytes=2 * 1024**3)
    assert isinstance(w, widgets.VBox) and w.assessment.pattern == "warm-up-plateau"
    assert "warm-up-plateau" in w.verdict.value
    first_png = _png(w)
    opts = w.window.options
    w.window.value = (opts[0][1], opts[60][1])  # just the warm-up: the baseline is still climbing
    assert len(w.selection()) < len(df) / 4
    # a climbing window alone: a leak, or (growth decelerating) "cannot tell a cache from a leak yet"
    assert w.assessment.verdict in ("leak", "inconclusive")
    assert f"Leak assessment: {w.assessment.verdict}" in w.verdict.value
    assert _png(w) != first_png
    w.source.value = "uss_bytes"
    assert w.assessment.column == "uss_bytes"


def test_given_assessment_is_shown_without_recomputing() -> None:
    df = load_samples(SERIES / "sawtooth_rising.csv")
    a = assess_leak(df, limit_bytes=1024**3, limit_source="MemoryMax")
    w = memory_explorer(df, a)
    assert w.assessment is a and "MemoryMax" in w.verdict.value and w.source.value == "rss_bytes"


def test_too_small_window_shows_an_error_instead_of_raising() -> None:
    w = memory_explorer(load_samples(SERIES / "flat.csv"), available_bytes=1024**3)
    opts = w.window.options
    w.window.value = (opts[3][1], opts[3][1])
    assert w.assessment is None and "cannot assess" in w.verdict.value and w.error


def test_bad_input() -> None:
    with pytest.raises(AnalysisError):
        memory_explorer("not a frame")
