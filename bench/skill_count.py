"""Benchmark: full ``summarize_logs`` over a big short-iso log vs the runbook's skill-count pipeline.

Baseline (same file, same run): ``grep -oP 'skill:[A-Za-z-]+' FILE | sort | uniq -c | sort -nr``.
Both engines (the native C scanner and the Python engine) run on the same file in the same run, interleaved
with the baseline; medians of ``--repeat`` runs. Target: throughput ratio (baseline time / zcnb time) >= 1.0,
peak memory (``ru_maxrss`` of a child that only summarises) < 256 MiB and independent of the file size
(measured at two sizes).

    python -m bench.skill_count [--size-mb 200] [--repeat 3] [--quick] [--no-python] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SKILLS = ("git_workflow", "web-search", "code_review", "memory-sync", "calendar", "shell_helper")
_BODIES = (
    (30, "info: [agent] turn started session=s{n} model=nim/llama-3.1-70b"),
    (18, "info: [nim] request tokens={n} latency_ms={m}"),
    (7, 'info: [agent] tool skill args={{"name":"{s}","command":"/git-status"}}'),
    (3, "info: [agent] invoking skill:{h}"),
    (5, 'info: [agent] tool shell args={{"cmd":"ls -la /tmp/{n}"}}'),
    (3, 'info: [agent] tool web_fetch args={{"url":"https://example.org/{n}"}}'),
    (12, "info: [whatsapp] message from +4915{n} delivered"),
    (5, "info: [heartbeat] ok"),
    (8, "info: [memory] journal entry appended id={n}"),
    (4, "info: [cron] job memory-update ran in {m}ms"),
    (2, "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header"),
    (1, "warning: [cron] job memory-update late by {m}ms"),
    (0.5, "error: [nim] upstream returned 503 after {m}ms"),
    (0.2, "Connection error: error.RateLimitExceeded"),
)


def generate(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """Write a realistic gateway short-iso log (one unit, two restarts); returns lines written."""
    rng = random.Random(seed)
    weights = [w for w, _ in _BODIES]
    pool = []
    for _ in range(5000):
        tmpl = rng.choices([b for _, b in _BODIES], weights)[0]
        s = rng.choice(SKILLS)
        pool.append(tmpl.format(n=rng.randint(1, 999999), m=rng.randint(1, 9999), s=s, h=s.replace("_", "-")))
    target = int(size_mb * 1024 * 1024)
    t = datetime(2026, 11, 20, tzinfo=UTC)
    written = lines = 0
    pid = 4100
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            if written > target // 3 and pid == 4100 or written > 2 * target // 3 and pid == 4101:
                pid += 1  # a restart: new pid and banner
                block = [f"{t:%Y-%m-%dT%H:%M:%S}+0000 gw01 zeptoclaw-gateway[{pid}]: ZeptoClaw Gateway v0.4.2\n"]
            else:
                block = []
            prefix = f"{t:%Y-%m-%dT%H:%M:%S}+0000 gw01 zeptoclaw-gateway[{pid}]: "
            block += [prefix + body + "\n" for body in rng.choices(pool, k=rng.randint(20, 80))]
            text = "".join(block)
            fh.write(text)
            written += len(text)
            lines += len(block)
            t += timedelta(seconds=1)
    return lines


def run_pipeline(path: Path) -> tuple[float, dict[str, int]]:
    """The runbook's pipeline as four real processes joined by pipes (no shell)."""
    t0 = time.perf_counter()
    grep = subprocess.Popen(["grep", "-oP", "skill:[A-Za-z-]+", str(path)], stdout=subprocess.PIPE)
    srt = subprocess.Popen(["sort"], stdin=grep.stdout, stdout=subprocess.PIPE)
    uniq = subprocess.Popen(["uniq", "-c"], stdin=srt.stdout, stdout=subprocess.PIPE)
    assert grep.stdout and srt.stdout and uniq.stdout
    grep.stdout.close()
    srt.stdout.close()
    out = subprocess.run(["sort", "-nr"], stdin=uniq.stdout, capture_output=True, check=True).stdout.decode()
    uniq.stdout.close()
    for p in (grep, srt, uniq):
        p.wait()
    dt = time.perf_counter() - t0
    return dt, {ln.split()[1]: int(ln.split()[0]) for ln in out.splitlines() if ln.strip()}


_CHILD = """
import json, sys, time
import pandas  # imported before timing: a notebook/CLI session has it loaded already
from zcnb.logs import summarize_logs
t0 = time.perf_counter()
s = summarize_logs(sys.argv[1], unit="zeptoclaw-gateway.service", bucket="1min", engine=sys.argv[2])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "skills": s.skill_counts, "lines": s.n_lines, "restarts": len(s.restarts),
                  "engine": [n for n in s.notes if n.startswith("engine:")]}))
"""


def run_zcnb(path: Path, engine: str) -> tuple[float, float, dict[str, Any]]:
    """summarize_logs in a child that does only that; returns (seconds inside, peak RSS MiB, result).

    Peak memory is the child's ``ru_maxrss`` (from ``wait4``: the largest of it and its reaped workers), so
    neither the parent's memory nor the generated file's page cache counts.
    """
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), engine], stdout=subprocess.PIPE,
                            cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"zcnb child ({engine}) failed with exit code {proc.returncode}")
    result = json.loads(out)
    return result["seconds"], usage.ru_maxrss / 1024, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.skill_count", description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=200.0, help="log size (the issue's figure is 500)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="50 MB, one repetition")
    ap.add_argument("--no-python", action="store_true", help="skip the (slow) Python engine")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    size, repeat = (50.0, 1) if args.quick else (args.size_mb, args.repeat)
    engines = ["native"] + ([] if args.no_python else ["python"])
    results: dict[str, Any] = {"size_mb": size, "cpus": os.cpu_count(), "repeat": repeat,
                               "load_avg_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="zcnb-bench-") as tmp:
        big, small = Path(tmp) / "big.log", Path(tmp) / "small.log"
        t0 = time.perf_counter()
        results["lines"] = generate(big, size)
        generate(small, size / 4, seed=1)
        print(f"generated {size:.0f} MB ({results['lines']} lines) in {time.perf_counter() - t0:.1f} s")
        mb = big.stat().st_size / (1 << 20)
        base: list[float] = []
        times: dict[str, list[float]] = {e: [] for e in engines}
        peaks: dict[str, list[float]] = {e: [] for e in engines}
        ref: dict[str, int] = {}
        res: dict[str, dict[str, Any]] = {}
        for _ in range(repeat):  # interleaved, so a burst of load on the shared machine hits all alike
            dt, ref = run_pipeline(big)
            base.append(dt)
            for e in engines:
                dz, peak, res[e] = run_zcnb(big, e)
                times[e].append(dz)
                peaks[e].append(peak)
        b = statistics.median(base)
        results.update({"baseline_pipeline_s": b, "baseline_runs_s": base, "baseline_mb_per_s": mb / b,
                        "skills_pipeline": ref})
        print(f"runbook pipeline   : median {b:.3f} s  ({mb / b:.0f} MB/s)  runs {_fmt(base)}")
        for e in engines:
            z = statistics.median(times[e])
            _, small_peak, _ = run_zcnb(small, e)
            results[e] = {"summarize_s": z, "runs_s": times[e], "mb_per_s": mb / z, "ratio_vs_pipeline": b / z,
                          "peak_rss_mib": max(peaks[e]), "peak_rss_mib_quarter_size": small_peak,
                          "engine_note": res[e]["engine"], "skills": res[e]["skills"],
                          "restarts": res[e]["restarts"]}
            print(f"zcnb {e:<7} engine: median {z:.3f} s  ({mb / z:.0f} MB/s)  runs {_fmt(times[e])}  "
                  f"ratio {b / z:.2f}x (target >= 1.0)  peak RSS {max(peaks[e]):.0f} MiB "
                  f"(quarter size: {small_peak:.0f} MiB)  [{'; '.join(res[e]['engine'])}]")
        if len(engines) > 1 and res["native"]["skills"] != res["python"]["skills"]:
            print("WARNING: the engines disagree on the skill counts")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _fmt(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in xs) + "]"


if __name__ == "__main__":
    sys.exit(main())
