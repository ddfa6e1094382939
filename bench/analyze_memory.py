"""Peak memory of ``zcnb analyze`` on big samples CSVs: a week at 1 Hz and 10 million rows.

    python -m bench.analyze_memory [--rows-big 10000000] [--baseline /path/to/old/checkout] [--runs 3]

Each measurement runs ``python -m zcnb analyze FILE --no-png --json OUT`` (and once with the PNG for the
week) in a child process and reads the child's peak RSS (``ru_maxrss`` of RUSAGE_CHILDREN, reset per run by
running each in its own ``python -c`` wrapper), wall and CPU time. ``--baseline`` also measures another
checkout (e.g. main) on the week file, the "before". Medians over ``--runs``; load average printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1024.0 * 1024.0
HEADER = ("# zcnb samples v1\n# target: pid=4242 bench\n# sources: psutil   interval_s: 1\n"
          "# memory_limit_bytes: 2147483648   memory_limit_source: MemoryMax of bench.service (systemctl show)\n"
          "timestamp,pid,source,rss_bytes,vms_bytes,uss_bytes,pss_bytes,cgroup_bytes,metrics_rss_bytes,"
          "metrics_vms_bytes,event,note\n")
WRAPPER = """
import resource, subprocess, sys, time, json
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
rc, proc_err = proc.returncode, proc.stderr
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "peak_rss_mib": ru.ru_maxrss / 1024.0, "stderr": proc_err[-300:]}))
"""


def write_csv(path: Path, rows: int, *, seed: int = 0) -> None:
    """1 Hz psutil rows (RSS, VMS, USS, PSS) of a 2 MiB/h leak under a 60 s sawtooth, written in blocks
    (the header records a 2 GiB MemoryMax; beyond ~40 days at 2 MiB/h the series is past it)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-11-01T00:00:00", "s")
    block = 200_000
    with path.open("w") as f:
        f.write(HEADER)
        for a in range(0, rows, block):
            t = np.arange(a, min(a + block, rows))
            rss = 64 * MIB + 2 * MIB * t / 3600 + 6 * MIB * ((t % 60) / 60) + rng.normal(0, 0.1 * MIB, len(t))
            rss = (np.round(rss / 4096) * 4096).astype(np.int64)
            stamps = (start + t.astype("timedelta64[s]")).astype(str)
            ev = np.where(t == 0, "start", "")
            f.writelines(f"{s}.000+00:00,4242,psutil,{r},{r * 3},{r - 8192},{r - 4096},,,,{e},\n"
                         for s, r, e in zip(stamps, rss, ev))


def measure(checkout: Path, csv: Path, out: Path, *, png: bool, runs: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(checkout), MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "zcnb", "analyze", str(csv), "--json", str(out)]
    cmd += ["--png", str(out.with_suffix(".png"))] if png else ["--no-png"]
    results = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env,
                              cwd=tempfile.gettempdir(), check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    verdict = json.loads(out.read_text()) if out.exists() and results[-1]["rc"] != 2 else {}
    return {"checkout": str(checkout), "png": png, "runs": runs, "rc": [r["rc"] for r in results],
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results),
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "cpu_s": statistics.median(r["cpu_s"] for r in results),
            "verdict": verdict.get("verdict"), "severity": verdict.get("severity"),
            "growth_mib_per_h": (verdict.get("growth_bytes_per_hour") or 0) / MIB, "stderr": results[-1]["stderr"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows-week", type=int, default=604_800)
    ap.add_argument("--rows-big", type=int, default=10_000_000, help="refused above ANALYZE_MAX_ROWS: time + peak")
    ap.add_argument("--rows-max", type=int, default=4_000_000, help="the most rows zcnb analyze reads (0: skip)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", help="another checkout to measure on the week file (e.g. /work/main)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    here = Path(__file__).resolve().parent.parent
    res: dict[str, Any] = {"load_avg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        week, big = Path(tmp) / "week.csv", Path(tmp) / "big.csv"
        t0 = time.perf_counter()
        write_csv(week, args.rows_week)
        res["week_file_mib"] = week.stat().st_size / MIB
        res["week"] = measure(here, week, Path(tmp) / "w.json", png=False, runs=args.runs)
        res["week_png"] = measure(here, week, Path(tmp) / "wp.json", png=True, runs=1)
        if args.baseline:
            res["week_baseline"] = measure(Path(args.baseline), week, Path(tmp) / "wb.json", png=False, runs=args.runs)
        week.unlink()
        if args.rows_max:
            write_csv(big, args.rows_max, seed=2)
            res["max_rows"] = args.rows_max
            res["max"] = measure(here, big, Path(tmp) / "m.json", png=False, runs=1)
            big.unlink()
        if args.rows_big:
            write_csv(big, args.rows_big, seed=1)
            res["big_rows"] = args.rows_big
            res["big_file_mib"] = big.stat().st_size / MIB
            res["big"] = measure(here, big, Path(tmp) / "b.json", png=False, runs=1)
        res["bench_s"] = time.perf_counter() - t0
    res["load_avg_after"] = os.getloadavg()
    for key in ("week", "week_png", "week_baseline", "max", "big"):
        if key in res:
            r = res[key]
            print(f"{key:<14} peak RSS {r['peak_rss_mib']:7.0f} MiB  wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s "
                  f" -> rc {r['rc'][-1]} {r['verdict']}/{r['severity']} {r['growth_mib_per_h']:.2f} MiB/h  ({r['checkout']})")
    if "week_baseline" in res:
        print(f"week peak RSS ratio baseline/this: {res['week_baseline']['peak_rss_mib'] / res['week']['peak_rss_mib']:.1f}x")
    print(f"load average before {res['load_avg_before']}, after {res['load_avg_after']}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
