"""The vectorised fleet engine (zcnb.fleet.vector) against the per-instance path: same verdicts.

Synthetic fleets with known modes (no mocks: both engines run the real analysis).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.fleet import generate
from zcnb.collect.prometheus import samples_frame
from zcnb.exceptions import ConfigError
from zcnb.fleet import fleet_view
from zcnb.fleet.vector import fleet_baselines, theil_sen_rows, window_minima_rows

GIB = 2**30
MIB = 2**20


def _mixed_fleet(n_each: int = 4) -> pd.DataFrame:
    """bench.fleet's six modes, plus instances with restarts (pid changes) and with scrape gaps."""
    df, _truth = generate(6 * n_each, 5760, seed=3)
    rng = np.random.default_rng(7)
    extra = []
    t = 1_764_000_000.0 + np.arange(5760) * 15.0
    hours = (t - t[0]) / 3600
    for i in range(n_each):
        # Restarts: a linear leak whose process restarts twice (pid changes, memory drops back).
        y = 80 * MIB + 20 * MIB * (hours % 8) + rng.normal(0, 0.3 * MIB, len(t))
        f = samples_frame([f"restart-{i}"] * len(t), t, y)
        f["pid"] = pd.array(1000 + (hours // 8).astype(int), dtype="Int64")
        extra.append(f)
        # Gaps: a flat and a leaking instance with a missing hour of scrapes each.
        keep = (hours < 5) | (hours > 6)
        flat = 120 * MIB + rng.normal(0, 0.3 * MIB, len(t))
        extra.append(samples_frame([f"gap-flat-{i}"] * int(keep.sum()), t[keep], flat[keep]))
        lin = 60 * MIB + 12 * MIB * hours + rng.normal(0, 0.3 * MIB, len(t))
        extra.append(samples_frame([f"gap-leak-{i}"] * int(keep.sum()), t[keep], lin[keep]))
    return pd.concat([df, *extra], ignore_index=True)


@pytest.mark.parametrize("limit", [2 * GIB, None])
def test_vector_equals_per_instance_on_mixed_fleet(limit: float | None) -> None:
    df = _mixed_fleet()
    vec = fleet_view(df, limit_bytes=limit, engine="vector", keep_data=False, workers=1)
    ref = fleet_view(df, limit_bytes=limit, engine="per-instance", keep_data=False, workers=1)
    assert any("engine: vector" in n for n in vec.notes) and any("engine: per-instance" in n for n in ref.notes)
    got = {r.instance: (r.verdict, r.pattern, r.severity) for r in vec.rows}
    want = {r.instance: (r.verdict, r.pattern, r.severity) for r in ref.rows}
    assert got == want
    ref_rows = {r.instance: r for r in ref.rows}
    # Same restart order, except between instances the reference itself ranks within 10 % of each other.
    assert set(vec.restart_order) == set(ref.restart_order)
    key = {r.instance: (r.time_to_limit_s if limit else -(r.growth_bytes_per_hour or 0.0)) for r in ref.rows}
    pos = {name: i for i, name in enumerate(vec.restart_order)}
    for a_, b_ in zip(ref.restart_order, ref.restart_order[1:]):
        ka, kb = abs(key[a_] or 0.0), abs(key[b_] or 0.0)
        if abs(ka - kb) > 0.1 * max(ka, kb):
            assert pos[a_] < pos[b_], (a_, b_)
    n_reduced = 0
    for r in vec.rows:
        q = ref_rows[r.instance]
        assert r.n_samples == q.n_samples and r.last_bytes == q.last_bytes
        if q.growth_bytes_per_hour and abs(q.growth_bytes_per_hour) > MIB:
            assert r.growth_bytes_per_hour == pytest.approx(q.growth_bytes_per_hour, rel=0.15)
        n_reduced += r.growth_bytes_per_hour != q.growth_bytes_per_hour
    # The vector engine really reduced most instances (it is not the per-instance path under another name).
    note = next(n for n in vec.notes if "engine: vector" in n)
    assert n_reduced > 0 and "restarts" in note and "GC cycles" in note


def test_routes_and_truth() -> None:
    df = _mixed_fleet(2)
    fb = fleet_baselines(df, by="instance", column="rss_bytes", limit_bytes=2 * GIB)
    route = dict(zip(fb.instances, fb.route))
    assert route["restart-0"] == "restarts"
    assert route["gap-flat-0"] == "baseline"  # missing scrapes are missing windows, not a different decision
    # Every mode of the generated truth comes out right.
    _df, truth = generate(12, 5760, seed=3)
    view = fleet_view(df, limit_bytes=2 * GIB, engine="vector", workers=1)
    verdicts = {r.instance: r.verdict for r in view.rows}
    assert all(verdicts[k] == v for k, v in truth.items())
    assert verdicts["restart-0"] == "leak" and verdicts["gap-leak-0"] == "leak" and verdicts["gap-flat-0"] == "no_leak"


def test_instances_scraped_at_their_own_offsets_stay_on_the_grid() -> None:
    """Raw scrapes of a fleet come at each target's own offset within the interval (Prometheus spreads them over
    it), and one instance may join late. Each instance keeps its own phase on the common step: they are reduced
    like aligned ones (all of them used to be routed to the raw path as "irregular time grid", one phase-shifted
    instance was enough), with the per-instance path's verdicts."""
    df, truth = generate(24, 5760, seed=4)
    rng = np.random.default_rng(5)
    parts = []
    for k, (_name, g) in enumerate(df.groupby("instance", sort=False)):
        g = g.copy()
        g["timestamp"] = g["timestamp"] + pd.to_timedelta(float(rng.uniform(0, 15)), unit="s")  # its own phase
        parts.append(g.iloc[-3000:] if k % 5 == 0 else g)  # some joined the fleet late
    shifted = pd.concat(parts, ignore_index=True)
    fb = fleet_baselines(shifted, by="instance", column="rss_bytes", limit_bytes=2 * GIB)
    aligned = fleet_baselines(df, by="instance", column="rss_bytes", limit_bytes=2 * GIB)
    assert "irregular time grid" not in fb.route and fb.route.count("baseline") >= aligned.route.count("baseline") - 2
    vec = fleet_view(shifted, limit_bytes=2 * GIB, engine="vector", keep_data=False, workers=1)
    ref = fleet_view(shifted, limit_bytes=2 * GIB, engine="per-instance", keep_data=False, workers=1)
    got = {r.instance: (r.verdict, r.pattern, r.severity) for r in vec.rows}
    assert got == {r.instance: (r.verdict, r.pattern, r.severity) for r in ref.rows}
    assert {k: v[0] for k, v in got.items()} == truth
    for name, frame in fb.baselines.items():  # the baseline keeps the instance's own times
        stamps = shifted.loc[shifted["instance"] == name, "timestamp"]
        assert set(frame["timestamp"]) <= set(stamps.dt.round("ms"))


def test_theil_sen_rows_matches_scipy() -> None:
    from scipy.stats import theilslopes

    rng = np.random.default_rng(1)
    t = np.tile(np.arange(50, dtype=float) * 60, (3, 1))
    y = np.vstack([5.0 * t[0] + rng.normal(0, 100, 50), rng.normal(0, 1, 50), -2.0 * t[0] + rng.normal(0, 50, 50)])
    y[1, 7] = np.nan  # a missing window
    slope, low, high, p = theil_sen_rows(t, y)
    for i in range(3):
        ok = ~np.isnan(y[i])
        ref = theilslopes(y[i, ok], t[i, ok], 0.95)
        assert slope[i] == pytest.approx(ref.slope) and low[i] == pytest.approx(ref.low_slope)
        assert high[i] == pytest.approx(ref.high_slope)
    assert p[0] < 1e-6 and p[2] < 1e-6 and p[1] > 1e-3


def test_window_minima_rows() -> None:
    t = np.arange(10, dtype=float)[None, :].repeat(2, axis=0)
    y = np.array([[5, 3, 4, 9, 1, 2, 7, 8, 6, 0], [np.nan] * 3 + [4, 5, 6, 1, 2, 3, 9]], dtype=float)
    bt, by = window_minima_rows(t, y, 3)
    assert by[0].tolist() == [3, 1, 6] and bt[0].tolist() == [1, 4, 8]  # trailing partial window dropped
    assert np.isnan(by[1, 0]) and by[1, 1:].tolist() == [4, 1]


def test_engine_option_is_checked() -> None:
    df = generate(2, 200)[0]
    with pytest.raises(ConfigError, match="engine"):
        fleet_view(df, engine="gpu")


@pytest.mark.slow
def test_vector_equals_per_instance_on_the_benchmark_fleet() -> None:
    """The benchmark's own fleet (200 instances x 1 day at 15 s, seed 0): the figures quoted for the vector engine
    are for verdicts, patterns and severities equal to the per-instance path's, and right against the truth."""
    df, truth = generate(200, 5760)
    vec = fleet_view(df, limit_bytes=2 * GIB, engine="vector", keep_data=False)
    ref = fleet_view(df, limit_bytes=2 * GIB, engine="per-instance", keep_data=False)
    got = {r.instance: (r.verdict, r.pattern, r.severity) for r in vec.rows}
    assert got == {r.instance: (r.verdict, r.pattern, r.severity) for r in ref.rows}
    assert {k: v[0] for k, v in got.items()} == truth


def test_row_order_does_not_change_the_pass() -> None:
    """Grouped rows in time order take the fast path (no sort, runs instead of hashing); shuffled rows and
    rows grouped in another label order take pd.factorize + lexsort. All three give the same pass."""
    df = _mixed_fleet(2)
    shuffled = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    names = sorted(df["instance"].unique(), reverse=True)
    regrouped = pd.concat([df[df["instance"] == n] for n in names], ignore_index=True)
    passes = [fleet_baselines(f, by="instance", column="rss_bytes", limit_bytes=2 * GIB)
              for f in (df, shuffled, regrouped)]
    first = passes[0]
    for other in passes[1:]:
        assert other.instances == first.instances and other.route == first.route
        for name in ("slope", "low", "high", "level", "cycle_ratio", "last", "n_samples"):
            assert np.array_equal(getattr(other, name), getattr(first, name), equal_nan=True), name
        assert set(other.baselines) == set(first.baselines)
        for key, frame in first.baselines.items():
            pd.testing.assert_frame_equal(other.baselines[key], frame)
        for key, rows in first.rows.items():  # positions in each frame's own row order, same samples
            a, b = df.iloc[rows], (shuffled if other is passes[1] else regrouped).iloc[other.rows[key]]
            assert a["timestamp"].tolist() == b["timestamp"].tolist()


@pytest.mark.parametrize("labels", [["b", "b", "a", "a", "c"], ["b", "a", "b"], ["a", None, "b"], [3, 3, 1],
                                    ["x"], [1, "a", "a"]])
def test_group_codes_equal_factorize(labels: list[object]) -> None:
    from zcnb.fleet.vector import _group_codes

    for series in (pd.Series(labels, dtype=object), pd.Series(labels).astype("string")
                   if all(isinstance(v, str) or v is None for v in labels) else pd.Series(labels, dtype=object)):
        codes, uniques = _group_codes(series)
        want_codes, want_uniques = pd.factorize(series, sort=True)
        assert codes.tolist() == want_codes.tolist() and list(uniques) == list(want_uniques)


def test_event_markers_found_in_any_column_type() -> None:
    from zcnb.fleet.vector import _has_text

    cells = np.array(["", "restart", None, float("nan"), pd.NA, "gap"], dtype=object)
    assert _has_text(cells).tolist() == [False, True, False, False, False, True]
    assert _has_text(np.array(["", "note"], dtype=object)).tolist() == [False, True]
