"""The vectorised statistics equal their straightforward definitions: Theil-Sen pair slopes formed in row
blocks against the pair-by-offset loop, and the one-pass warm-up-plus-line fit against one ``lstsq`` per tau."""

from __future__ import annotations

import math

import numpy as np
import pytest

import zcnb.analysis._stats as stats
from zcnb.analysis._stats import pooled_theil_sen


def _reference_pairs(t: np.ndarray, y: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, float]:
    slopes, s = [], 0.0
    for g in np.unique(seg):
        ts, ys = t[seg == g], y[seg == g]
        for i in range(len(ts)):
            for j in range(i + 1, len(ts)):
                if ts[j] > ts[i]:
                    slopes.append((ys[j] - ys[i]) / (ts[j] - ts[i]))
                    s += float(np.sign(ys[j] - ys[i]))
    return np.array(slopes), s


@pytest.mark.parametrize("times", ["repeated", "increasing"])
@pytest.mark.parametrize("block", [1, 7, 200, 1 << 18])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_theil_sen_blocks_equal_every_pair(monkeypatch: pytest.MonkeyPatch, block: int, seed: int,
                                           times: str) -> None:
    """Repeated times take the masked path (pairs with dt = 0 are left out); strictly increasing times take
    the rectangle-plus-triangle path. Blocks of 1, 7 and 200 cells cut the rows at different places."""
    monkeypatch.setattr(stats, "_PAIR_BLOCK_CELLS", block)
    rng = np.random.default_rng(seed)
    n = 90
    t = np.sort(rng.integers(0, 60, n)).astype(float)
    if times == "increasing":
        t = np.cumsum(rng.uniform(0.5, 2.0, n))
    y = np.round(rng.normal(0, 3, n) + 0.2 * t)  # ties in y
    seg = np.repeat(np.arange(3), n // 3)
    ref, s_ref = _reference_pairs(t, y, seg)
    trend = pooled_theil_sen(t, y, seg)
    assert trend is not None
    assert trend.n_pairs == len(ref) and trend.s == s_ref
    assert trend.slope == float(np.median(ref))
    ordered = np.sort(ref)
    assert trend.low in ordered and trend.high in ordered and trend.low <= trend.slope <= trend.high


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101])
@pytest.mark.parametrize("shape", [(), (4,)])
def test_order_statistics_equal_a_full_sort(n: int, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(n)
    a = np.round(rng.normal(0, 5, (*shape, n)))  # ties
    want = np.sort(a, axis=-1)
    for ks in ([0], [n - 1], [n // 2], sorted({0, n // 3, n // 2, n - 1}), sorted({(n - 1) // 2, n // 2})):
        got = stats.order_statistics(a.copy(), ks)
        assert np.array_equal(got, want[..., sorted(set(ks))])
    with pytest.raises(ValueError):
        stats.order_statistics(a.copy(), [n])


def _reference_sat_line(tt: np.ndarray, yy: np.ndarray, taus: np.ndarray) -> tuple[float, float]:
    best, coef = math.inf, 0.0
    tn = tt / max(float(tt[-1]), 1e-9)
    for tau in taus:
        x = np.column_stack((np.ones_like(tt), -np.expm1(-tt / tau), tn))
        sol, res, rank, _ = np.linalg.lstsq(x, yy, rcond=None)
        if rank == 3 and res.size and float(res[0]) < best:
            best, coef = float(res[0]), float(sol[2])
    return (best, coef) if math.isfinite(best) else (float(np.sum((yy - yy.mean()) ** 2)), 0.0)


@pytest.mark.parametrize("shape", ["warm-up+leak", "warm-up", "line", "noise", "step"])
def test_warm_up_plus_line_fit_equals_lstsq_per_tau(shape: str) -> None:
    rng = np.random.default_rng(5)
    tt = np.sort(rng.uniform(0, 86_400, 700))
    tt -= tt[0]
    span = float(tt[-1])
    base = {"warm-up+leak": 3 * -np.expm1(-tt / 3_000) + tt / span, "warm-up": 4 * -np.expm1(-tt / 9_000),
            "line": 2 * tt / span, "noise": np.zeros_like(tt), "step": (tt > span / 2).astype(float)}[shape]
    yy = base + rng.normal(0, 0.05, len(tt))
    taus = np.geomspace(span / 60.0, 5.0 * span, 72)
    sse, c = stats._sat_line_sse(tt, yy, taus)
    sse_ref, c_ref = _reference_sat_line(tt, yy, taus)
    assert sse == pytest.approx(sse_ref, rel=1e-7, abs=1e-9)
    assert c == pytest.approx(c_ref, rel=1e-6, abs=1e-8)
