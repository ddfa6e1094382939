"""Soak: the sampler at 10 Hz for N samples; its own RSS growth and its schedule jitter.

    python -m bench.sampler_soak [--samples N] [--quick] [--interval 0.1] [--out results.json]

Default 600 samples (~60 s). The issue's full soak is ``--samples 100000`` (~2.8 h at 10 Hz).
Targets (issue 7), which are the baseline the ratios are printed against: own RSS growth < 2 MiB,
schedule lateness p99 < 20 ms. Lateness = how long after its due time (start + k * interval, monotonic)
tick k started; it is recorded through ``tick_hook`` into an array allocated before the RSS baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

RSS_TARGET = 2 * 2**20
P99_TARGET_S = 0.020


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=600, help="samples (default 600 ~ 60 s; full soak: 100000)")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between samples (default 0.1 = 10 Hz)")
    ap.add_argument("--quick", action="store_true", help="200 samples (~20 s)")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    n = 200 if args.quick else args.samples
    from zcnb.sampling import sample

    lateness = np.full(n, np.nan)

    def hook(k: int, late: float) -> None:
        if k < n:
            lateness[k] = late

    target = subprocess.Popen([sys.executable, "-c", "import time\nkeep=b'x'*(30*2**20)\nwhile True: time.sleep(1)",
                               "zcnb-bench-soak-target"])
    me = psutil.Process()
    try:
        time.sleep(0.3)
        with tempfile.TemporaryDirectory() as tmp:
            sample(Path(tmp) / "warm.csv", pid=target.pid, interval_s=args.interval, max_samples=20, duration_s=None,
                   progress=False, sources=["psutil", "cgroup"])
            rss0 = me.memory_info().rss
            cpu0 = time.process_time()
            t0 = time.monotonic()
            summary = sample(Path(tmp) / "soak.csv", pid=target.pid, interval_s=args.interval, max_samples=n,
                             duration_s=None, progress=False, sources=["psutil", "cgroup"], tick_hook=hook)
            wall = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            rss1 = me.memory_info().rss
            csv_bytes = (Path(tmp) / "soak.csv").stat().st_size
    finally:
        target.kill()
        target.wait()
    late = lateness[~np.isnan(lateness)]
    p50, p99, worst = (float(np.percentile(late, q)) for q in (50, 99, 100))
    growth = rss1 - rss0
    res: dict[str, Any] = {"samples": summary.samples, "missed_ticks": summary.missed_ticks, "interval_s": args.interval,
                           "wall_s": wall, "cpu_s": cpu, "cpu_ms_per_sample": cpu / max(summary.samples, 1) * 1e3,
                           "rss_growth_bytes": growth, "rss_growth_target_bytes": RSS_TARGET,
                           "lateness_p50_ms": p50 * 1e3, "lateness_p99_ms": p99 * 1e3, "lateness_max_ms": worst * 1e3,
                           "lateness_p99_target_ms": P99_TARGET_S * 1e3, "csv_bytes": csv_bytes}
    print(f"samples {summary.samples} (missed {summary.missed_ticks}) in {wall:.1f} s, "
          f"{res['cpu_ms_per_sample']:.3f} ms CPU/sample")
    print(f"own RSS growth : {growth / 2**20:.3f} MiB  (target < 2 MiB: {growth / RSS_TARGET:.2f} of it) -> "
          f"{'PASS' if growth < RSS_TARGET else 'FAIL'}")
    print(f"lateness p50   : {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms (target < 20 ms: {p99 / P99_TARGET_S:.2f} of it)"
          f", max {worst * 1e3:.1f} ms -> {'PASS' if p99 < P99_TARGET_S else 'FAIL'}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
