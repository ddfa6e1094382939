"""Wall time of ``zcnb demo`` (the README's second command), end to end, with its PDF.

Target: under 90 s on the project's 2-core machine. Each run is the real command in a subprocess
(``python -m zcnb demo --pdf --no-progress``) with its own incidents folder and ``$TMPDIR``, and is checked:
exit 0, a leak verdict, the token-less probes found as the cause, report.pdf written, nothing left in
``$TMPDIR``. Baseline, measured in the same run: the demo as it was before (110 s + 70 s sampled at 1 s,
probes in 30 s waves, one stage after the other, each in a kernel started when its turn comes).

    python -m bench.demo [--runs 3] [--baseline-runs 1] [--quick] [--out results.json]
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

_BASELINE = ("from zcnb.demo.runner import DemoOptions, run_demo\n"
             "import sys\n"
             "run = run_demo(incidents_dir=sys.argv[1], progress=False, say=lambda s: None, options=DemoOptions(\n"
             "    sample_s=110, after_s=70, interval_s=1.0, unauth_rate=1.5, probe_period_s=30, bucket='auto',\n"
             "    stage_workers=1, warm_kernels=False, pdf=True))\n"
             "print('report:', run.report_html)\n"
             "sys.exit(0 if run.ok else 1)\n")


def _one(argv: list[str], incidents: Path, tmp: Path) -> float:
    env = {**os.environ, "TMPDIR": str(tmp), "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"demo run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    folder = next(p for p in incidents.iterdir() if p.is_dir())
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["assessment"]["verdict"] == "leak", summary["assessment"]
    assert "unauth" in json.dumps(summary.get("top_activity")), summary.get("top_activity")
    assert (folder / "report.pdf").is_file(), "no report.pdf"
    assert not any(tmp.iterdir()), f"left in TMPDIR: {sorted(p.name for p in tmp.iterdir())}"
    return wall


def _runs(n: int, argv: list[str], label: str) -> list[float]:
    out = []
    for i in range(n):
        with tempfile.TemporaryDirectory(prefix="zcnb-bench-demo-") as d:
            incidents, tmp = Path(d) / "incidents", Path(d) / "tmp"
            tmp.mkdir()
            cmd = [a.replace("{incidents}", str(incidents)) for a in argv]
            out.append(_one(cmd, incidents, tmp))
            print(f"{label} run {i + 1}/{n}: {out[-1]:.1f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="runs of zcnb demo (median reported; default 3)")
    p.add_argument("--baseline-runs", type=int, default=1, help="runs of the previous demo (default 1; 0 skips it)")
    p.add_argument("--quick", action="store_true", help="one run of each")
    p.add_argument("--out", help="write results JSON here")
    args = p.parse_args(argv)
    runs, base_runs = (1, min(1, args.baseline_runs)) if args.quick else (args.runs, args.baseline_runs)
    demo = _runs(runs, [sys.executable, "-m", "zcnb", "demo", "--pdf", "--no-progress", "--incidents-dir",
                        "{incidents}"], "zcnb demo")
    base = _runs(base_runs, [sys.executable, "-c", _BASELINE, "{incidents}"], "previous demo") if base_runs else []
    result: dict[str, object] = {"runs": runs, "zcnb_demo_s": demo, "zcnb_demo_median_s": statistics.median(demo),
                                 "target_s": 90.0, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    print(f"zcnb demo (median of {runs}): {statistics.median(demo):.1f} s (target < 90 s)")
    if base:
        result.update(baseline_s=base, baseline_median_s=statistics.median(base),
                      ratio_baseline_over_demo=statistics.median(base) / statistics.median(demo))
        print(f"previous demo (median of {len(base)}): {statistics.median(base):.1f} s; "
              f"ratio {statistics.median(base) / statistics.median(demo):.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
