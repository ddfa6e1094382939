"""Leak analysis: is the memory *baseline* growing, how fast, and what to do about it.

Pure functions over the samples DataFrame (docs/CONTRACTS.md "Samples"); method in docs/analysis.md.
"""

from __future__ import annotations

from ._assess import assess_leak, baseline
from ._model import DataNeeded, LeakAssessment, LeakThresholds, SegmentGrowth
from ._prepare import COLUMN_ORDER, pick_column
from ._stats import order_statistics

__all__ = [
    "COLUMN_ORDER",
    "DataNeeded",
    "LeakAssessment",
    "LeakThresholds",
    "SegmentGrowth",
    "assess_leak",
    "baseline",
    "order_statistics",
    "pick_column",
]
