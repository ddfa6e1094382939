"""Soak: the sampler at 10 Hz for N samples; its own RSS growth and its schedule jitter.

    python -m bench.sampler_soak [--samples N] [--quick] [--interval 0.1] [--accelerate X] [--out results.json]

Default 600 samples (~60 s). The issue's full soak is ``--samples 100000`` (~2.8 h at 10 Hz).
Targets (issue 7), which are the baseline the ratios are printed against: own RSS growth < 2 MiB,
schedule lateness p99 < 20 ms. Lateness = how long after its due time (start + k * interval, monotonic)
tick k started; it is recorded through ``tick_hook`` into an array allocated before the RSS baseline.
Every ``n / 10`` samples the hook also records where the RSS is (``/proc/self/status``: anonymous memory vs.
file-backed pages such as shared libraries faulted in late), the C heap (glibc ``mallinfo2``: bytes in use vs.
free but held) and the count of live Python blocks (``sys.getallocatedblocks``), so a growth can be told apart: a
leak grows "in use" or the block count; fragmentation grows "held"; code paths run for the first time grow "file".

``--accelerate X`` runs the very same tick path on a clock X times faster (the sampler's injectable monotonic
clock and wait): 100,000 samples in minutes instead of hours, to find and check a growth quickly. Only a run
without it (real 10 Hz) measures the issue's targets; an accelerated run says so in its output and JSON.
"""

from __future__ import annotations

import argparse
import ctypes
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ["arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"]]


def _bind_mallinfo2() -> Any:
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _bind_mallinfo2()  # bound once: each ctypes.CDLL() call itself keeps ~40 bytes of C heap


def heap_bytes() -> tuple[int, int]:
    """(C heap bytes in use, free bytes the heap holds) from glibc, or (-1, -1) where there is no mallinfo2."""
    if _MALLINFO2 is None:
        return -1, -1
    m = _MALLINFO2()
    return int(m.uordblks + m.hblkhd), int(m.fordblks)


def rss_parts() -> tuple[int, int]:
    """(RssAnon, RssFile) of this process in bytes, from /proc/self/status."""
    parts = {}
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith((b"RssAnon:", b"RssFile:")):
                parts[line.split(b":")[0]] = int(line.split()[1]) * 1024
    return parts.get(b"RssAnon", -1), parts.get(b"RssFile", -1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=600, help="samples (default 600 ~ 60 s; full soak: 100000)")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between samples (default 0.1 = 10 Hz)")
    ap.add_argument("--quick", action="store_true", help="200 samples (~20 s)")
    ap.add_argument("--accelerate", type=float, default=1.0, metavar="X",
                    help="run the sampler's clock X times faster (a quick growth check, not the targets' measurement)")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    if not args.accelerate >= 1:
        ap.error(f"--accelerate must be >= 1, got {args.accelerate}")
    speed = float(args.accelerate)
    clock: dict[str, Any] = {}
    if speed != 1.0:
        base = time.monotonic()

        def fast_wait(d: float) -> bool:
            time.sleep(d / speed)
            return False  # never "stopped"

        clock = {"monotonic": lambda: base + (time.monotonic() - base) * speed, "wait": fast_wait}
    n = 200 if args.quick else args.samples
    from zcnb.collect.sampling import sample

    lateness = np.full(n, np.nan)
    every = max(1, n // 10)
    marks = np.full((n // every + 1, 6), -1, dtype=np.int64)  # k, rss anon/file, C heap in use/free held, py blocks

    def mark(row: int, k: int) -> None:
        marks[row] = (k, *rss_parts(), *heap_bytes(), sys.getallocatedblocks())

    def hook(k: int, late: float) -> None:
        if k < n:
            lateness[k] = late / speed  # real seconds
            if k % every == 0:
                mark(k // every, k)

    target = subprocess.Popen([sys.executable, "-c", "import time\nkeep=b'x'*(30*2**20)\nwhile True: time.sleep(1)",
                               "zcnb-bench-soak-target"])
    me = psutil.Process()
    try:
        time.sleep(0.3)
        with tempfile.TemporaryDirectory() as tmp:
            sample(Path(tmp) / "warm.csv", pid=target.pid, interval_s=args.interval, max_samples=20, duration_s=None,
                   progress=False, sources=["psutil", "cgroup"], **clock)
            mark(0, -1)  # touch the code path once before the baseline
            rss0 = me.memory_info().rss
            cpu0 = time.process_time()
            t0 = time.monotonic()
            summary = sample(Path(tmp) / "soak.csv", pid=target.pid, interval_s=args.interval, max_samples=n,
                             duration_s=None, progress=False, sources=["psutil", "cgroup"], tick_hook=hook,
                             **clock)
            wall = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            rss1 = me.memory_info().rss
            marks[-1] = (summary.samples, *rss_parts(), *heap_bytes(), sys.getallocatedblocks())
            csv_bytes = (Path(tmp) / "soak.csv").stat().st_size
    finally:
        target.kill()
        target.wait()
    late = lateness[~np.isnan(lateness)]
    p50, p99, worst = (float(np.percentile(late, q)) for q in (50, 99, 100))
    growth = rss1 - rss0
    res: dict[str, Any] = {"samples": summary.samples, "missed_ticks": summary.missed_ticks, "interval_s": args.interval,
                           "accelerate": speed,
                           "wall_s": wall, "cpu_s": cpu, "cpu_ms_per_sample": cpu / max(summary.samples, 1) * 1e3,
                           "rss_growth_bytes": growth, "rss_growth_target_bytes": RSS_TARGET,
                           "lateness_p50_ms": p50 * 1e3, "lateness_p99_ms": p99 * 1e3, "lateness_max_ms": worst * 1e3,
                           "lateness_p99_target_ms": P99_TARGET_S * 1e3, "csv_bytes": csv_bytes,
                           "marks": [dict(zip(("sample", "rss_anon", "rss_file", "heap_in_use", "heap_free_held",
                                                   "python_blocks"),
                                              map(int, m))) for m in marks if m[0] >= 0]}
    if speed != 1.0:
        print(f"ACCELERATED x{speed:g}: the tick path ran {speed:g} times faster than --interval; "
              "a growth check only, not a measurement of the 10 Hz targets")
    print(f"samples {summary.samples} (missed {summary.missed_ticks}) in {wall:.1f} s, "
          f"{res['cpu_ms_per_sample']:.3f} ms CPU/sample")
    def verdict(ok: bool) -> str:
        return ("PASS" if ok else "FAIL") if speed == 1.0 else ("within" if ok else "over") + " (accelerated run)"

    print(f"own RSS growth : {growth / 2**20:.3f} MiB  (target < 2 MiB: {growth / RSS_TARGET:.2f} of it) -> "
          f"{verdict(growth < RSS_TARGET)}")
    print(f"lateness p50   : {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms (target < 20 ms: {p99 / P99_TARGET_S:.2f} of it)"
          f", max {worst * 1e3:.1f} ms -> {verdict(p99 < P99_TARGET_S)}")
    m0, m1 = marks[0], marks[-1]
    if m0[0] >= 0 and m1[0] >= 0:
        d = (m1 - m0) / 2**20
        print(f"growth by kind : anon {d[1]:+.3f} MiB, file-backed {d[2]:+.3f} MiB; C heap in use {d[3]:+.3f} MiB, "
              f"free but held {d[4]:+.3f} MiB; Python blocks {int(m1[5] - m0[5]):+d} (first to last mark)")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
