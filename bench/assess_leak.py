"""Benchmark assess_leak on a week of 1 Hz samples (604,800 rows) against naive Theil-Sen.

    python -m bench.assess_leak [--quick] [--runs N] [--out results.json]

Baseline: ``scipy.stats.theilslopes`` on the raw series, measured in the same run. It is O(n^2) in time
and memory, so it is timed on the first 1,000 / 2,000 / 4,000 raw rows and extrapolated (x n^2) to the
full size; the same-size ratio (assess_leak on those rows vs theilslopes on them) is reported too.
Peak memory: tracemalloc peak inside assess_leak, and the process ru_maxrss.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc
from typing import Any

import numpy as np
import pandas as pd

MIB = 1024.0 * 1024.0


def week_frame(n: int, *, seed: int = 0) -> pd.DataFrame:
    """1 Hz sawtooth (GC every ~60 s) over a 2 MiB/h leak, page-granular noise, one restart."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    y = 64 * MIB + 2 * MIB * t / 3600 + 6 * MIB * ((t % 60) / 60) + rng.normal(0, 0.1 * MIB, n)
    y = np.round(y / 4096) * 4096
    restart = n // 2
    y[restart:] -= 2 * MIB * restart / 3600
    pid = np.where(np.arange(n) < restart, 1000, 2000)
    event = np.full(n, "", dtype=object)
    event[restart] = "restart"
    return pd.DataFrame({
        "timestamp": pd.Timestamp("2026-11-21T00:00:00Z") + pd.to_timedelta(t, unit="s"),
        "pid": pd.array(pid, dtype="Int64"), "source": "psutil", "rss_bytes": y, "vms_bytes": np.nan,
        "uss_bytes": np.nan, "pss_bytes": np.nan, "cgroup_bytes": np.nan, "metrics_rss_bytes": np.nan,
        "metrics_vms_bytes": np.nan, "event": event, "note": ""})


def _time(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from scipy.stats import theilslopes

    from zcnb.analysis import assess_leak

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=604_800)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="3 runs, baseline sizes up to 2,000")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    runs = 3 if args.quick else args.runs
    sizes = (1000, 2000) if args.quick else (1000, 2000, 4000)
    df = week_frame(args.rows)
    a = assess_leak(df, available_bytes=8 * 1024**3)  # warm-up: imports, caches
    wall = _time(lambda: assess_leak(df, available_bytes=8 * 1024**3), runs)
    tracemalloc.start()
    assess_leak(df, available_bytes=8 * 1024**3)
    peak = tracemalloc.get_traced_memory()[1] / MIB
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    y = df["rss_bytes"].to_numpy()
    x = np.arange(len(y), dtype=float)
    naive: dict[int, dict[str, float]] = {}
    for n in sizes:
        t_naive = _time(lambda n=n: theilslopes(y[:n], x[:n]), runs)
        tracemalloc.start()
        theilslopes(y[:n], x[:n])
        n_peak = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
        t_ours = _time(lambda n=n: assess_leak(df.iloc[:n], available_bytes=8 * 1024**3), runs)
        naive[n] = {"theilslopes_s": t_naive, "assess_leak_s": t_ours, "theilslopes_peak_mib": n_peak,
                    "ratio_naive_over_ours": t_naive / t_ours}
    big = max(sizes)
    scale = (args.rows / big) ** 2
    extrap_s = naive[big]["theilslopes_s"] * scale
    extrap_mib = naive[big]["theilslopes_peak_mib"] * scale
    result = {
        "rows": args.rows, "runs": runs, "verdict": a.verdict, "pattern": a.pattern,
        "growth_mib_per_h": a.growth_bytes_per_hour / MIB if a.growth_bytes_per_hour else None,
        "assess_leak_median_s": wall, "assess_leak_tracemalloc_peak_mib": peak, "process_maxrss_mib": maxrss,
        "naive_by_size": {str(k): v for k, v in naive.items()},
        "naive_extrapolated_s": extrap_s, "naive_extrapolated_peak_mib": extrap_mib,
        "speedup_vs_naive_extrapolated": extrap_s / wall,
        "targets": {"wall_s": 2.0, "peak_mib": 500.0},
    }
    print(f"assess_leak on {args.rows:,} rows: median {wall:.3f} s over {runs} runs, "
          f"tracemalloc peak {peak:.0f} MiB, process maxrss {maxrss:.0f} MiB "
          f"-> {a.verdict}/{a.pattern} {result['growth_mib_per_h']:.2f} MiB/h (true 2.00)")
    for n, v in naive.items():
        print(f"  n={n:>5}: theilslopes {v['theilslopes_s'] * 1e3:8.1f} ms ({v['theilslopes_peak_mib']:.0f} MiB), "
              f"assess_leak {v['assess_leak_s'] * 1e3:7.1f} ms, ratio naive/ours {v['ratio_naive_over_ours']:.1f}x")
    print(f"  naive theilslopes extrapolated to {args.rows:,} rows: ~{extrap_s / 3600:.1f} h and "
          f"~{extrap_mib / 1024:.0f} GiB; ratio naive/ours ~{extrap_s / wall:,.0f}x")
    if args.out:
        from zcnb.files import write_json

        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
