"""CPU time per sample: zcnb's sampler vs the runbook's shell loop body, on the same target process.

    python -m bench.sampler_cost [--quick] [--samples N] [--rounds R] [--out results.json]

Baseline (the runbook, Step 1 "Correlate with Time"), run through bash exactly as written, once per sample:
    ts=$(date -Iseconds); rss=$(ps -o rss= -p $(pgrep -f "$PAT")); echo "$ts,$rss" >> FILE
measured as the CPU (user+sys) of the waited-for children (resource.getrusage(RUSAGE_CHILDREN)).
zcnb: one full sampler tick (psutil RSS/VMS/USS/PSS + cgroup + CSV row written and flushed), measured as
this process's CPU (time.process_time) with a clock that never sleeps, so only the work is counted.
The pattern is passed in an env var so that pgrep does not match the bash process itself.
Target: zcnb at least 20x cheaper per sample. Medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUNBOOK_BODY = 'ts=$(date -Iseconds); rss=$(ps -o rss= -p $(pgrep -f "$PAT")); echo "$ts,$rss" >> "$OUT"'


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def runbook_round(n: int, pattern: str, out: Path) -> float:
    """CPU seconds per sample of the runbook's loop body run through bash."""
    env = {**os.environ, "PAT": pattern, "OUT": str(out)}
    before = _children_cpu()
    for _ in range(n):
        subprocess.run(["bash", "-c", RUNBOOK_BODY], env=env, check=True)
    return (_children_cpu() - before) / n


def zcnb_round(n: int, pid: int, out: Path, *, uss_pss: bool = True) -> float:
    """CPU seconds per sample of a zcnb sampler tick."""
    from zcnb.collect.process import ProcessQuery
    from zcnb.collect.sampling import Sampler

    clock = {"t": 0.0}

    def wait(dt: float) -> bool:
        clock["t"] += dt
        return False

    out.unlink(missing_ok=True)
    s = Sampler(out, query=ProcessQuery(pid=pid), sources=["psutil", "cgroup"], interval_s=1.0, duration_s=None, uss_pss=uss_pss,
                max_samples=n, progress=False, monotonic=lambda: clock["t"], wait=wait)
    before = time.process_time()
    summary = s.run()
    assert summary.samples == n, summary
    return (time.process_time() - before) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100, help="samples per round (default 100)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--quick", action="store_true", help="30 samples x 3 rounds")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    n, rounds = (30, 3) if args.quick else (args.samples, args.rounds)
    tag = "zcnb-bench-cost-target"
    target = subprocess.Popen([sys.executable, "-c", "import time\nkeep=b'x'*(30*2**20)\nwhile True: time.sleep(1)",
                               tag])
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            zcnb_round(5, target.pid, Path(tmp) / "warm.csv")  # imports and caches out of the measurement
            zc, zr, rb = [], [], []
            for i in range(rounds):
                zc.append(zcnb_round(n, target.pid, Path(tmp) / f"z{i}.csv"))
                zr.append(zcnb_round(n, target.pid, Path(tmp) / f"zr{i}.csv", uss_pss=False))
                rb.append(runbook_round(n, tag, Path(tmp) / f"r{i}.csv"))
            lines = (Path(tmp) / "r0.csv").read_text().splitlines()
            assert lines and lines[0].split(",")[1].strip().isdigit(), f"runbook loop produced {lines[:1]}"
    finally:
        target.kill()
        target.wait()
    zmed, zrmed, rmed = statistics.median(zc), statistics.median(zr), statistics.median(rb)
    res: dict[str, Any] = {"samples_per_round": n, "rounds": rounds, "zcnb_cpu_ms_per_sample": zmed * 1e3,
                           "zcnb_rss_only_cpu_ms_per_sample": zrmed * 1e3,
                           "runbook_cpu_ms_per_sample": rmed * 1e3, "ratio": rmed / zmed if zmed else None,
                           "ratio_rss_only": rmed / zrmed if zrmed else None,
                           "target_ratio": 20.0, "zcnb_rounds_ms": [x * 1e3 for x in zc],
                           "runbook_rounds_ms": [x * 1e3 for x in rb]}
    print(f"zcnb tick, default (RSS/VMS+USS/PSS+cgroup): median {zmed * 1e3:.3f} ms CPU/sample")
    print(f"zcnb tick, RSS/VMS+cgroup (--no-uss-pss)   : median {zrmed * 1e3:.3f} ms CPU/sample")
    print(f"runbook bash: date; ps -o rss= -p $(pgrep)  : median {rmed * 1e3:.3f} ms CPU/sample (baseline)")
    for label, r in (("default", res["ratio"]), ("RSS-only, like for like", res["ratio_rss_only"])):
        print(f"ratio {label:24}: {r:.1f}x cheaper (target >= 20x) -> {'PASS' if r and r >= 20 else 'FAIL'}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
