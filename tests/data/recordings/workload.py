"""A small Python process whose memory follows one pattern; sampled by zcnb's sampler (record.py).

    python workload.py MODE [--seed N] [--key=value ...]

Run with MALLOC_MMAP_THRESHOLD_=131072 (record.py sets it) so freed buffers go back to the OS at once
and RSS shows the pattern rather than glibc's heap trimming. Every buffer is filled (pages touched).
Modes: flat, linear, sawflat, sawrise, warmup, decel, step. Runs until killed.
"""

from __future__ import annotations

import argparse
import math
import random
import time

KIB = 1024
MIB = 1024 * 1024
TICK = 0.1


def buf(n: int) -> bytearray:
    return bytearray(b"\x01") * max(int(n), 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate-kib-s", type=float, default=0.0, help="steady leak")
    ap.add_argument("--churn-mib", type=float, default=1.0, help="random short-lived allocations (noise)")
    ap.add_argument("--period-s", type=float, default=15.0, help="GC cycle")
    ap.add_argument("--amp-mib", type=float, default=12.0, help="GC cycle amplitude")
    ap.add_argument("--cache-mib", type=float, default=40.0, help="warm-up / bounded cache size")
    ap.add_argument("--fill-s", type=float, default=30.0, help="warm-up fill time")
    ap.add_argument("--tau-s", type=float, default=20.0, help="bounded cache time constant")
    ap.add_argument("--step-mib", type=float, default=10.0)
    ap.add_argument("--step-min-s", type=float, default=30.0)
    ap.add_argument("--step-max-s", type=float, default=60.0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    base = [buf(8 * MIB)]  # the process's own working set
    leaked: list[bytearray] = []
    cache: list[bytearray] = []
    cache_bytes = 0
    cycle: list[bytearray] = []
    temp: list[tuple[float, bytearray]] = []
    start = time.monotonic()
    next_step = start + rng.uniform(a.step_min_s, a.step_max_s)
    owed = 0.0
    cycle_start = start
    while True:
        now = time.monotonic()
        t = now - start
        if a.rate_kib_s > 0 or a.mode in ("linear", "sawrise"):
            owed += a.rate_kib_s * KIB * TICK
            if owed >= 64 * KIB:
                leaked.append(buf(owed))
                owed = 0.0
        if a.mode in ("sawflat", "sawrise"):
            if now - cycle_start >= a.period_s * rng.uniform(0.9, 1.1):
                cycle.clear()
                cycle_start = now
            else:
                cycle.append(buf(a.amp_mib * MIB * TICK / a.period_s))
        if a.mode in ("warmup", "decel"):
            if a.mode == "warmup":
                target = a.cache_mib * MIB * min(t / a.fill_s, 1.0)
            else:
                target = a.cache_mib * MIB * (1.0 - math.exp(-t / a.tau_s))
            if target - cache_bytes >= 64 * KIB:
                cache.append(buf(target - cache_bytes))
                cache_bytes = sum(len(c) for c in cache)
        if a.mode == "step" and now >= next_step:
            leaked.append(buf(a.step_mib * MIB))
            next_step = now + rng.uniform(a.step_min_s, a.step_max_s)
        if a.churn_mib > 0 and rng.random() < 0.2:
            temp.append((now + rng.uniform(0.5, 3.0), buf(rng.uniform(0.2, 1.0) * a.churn_mib * MIB)))
        temp = [(end, b) for end, b in temp if end > now]
        base[0][int(t) % len(base[0])] ^= 1
        time.sleep(TICK)


if __name__ == "__main__":
    main()
