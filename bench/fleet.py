"""Fleet analysis benchmark: the vectorised engine on 200 x 1 day at 15 s, and the Prometheus push-down.

``python -m bench.fleet [--quick] [--runs N] [--shape aligned|phased] [--prometheus 1000,10000] [--out results.json]``

Part 1 (in memory): 200 instances x 5,760 points (1 day at 15 s, 1.15 M points) with known modes;
per run, :func:`zcnb.fleet.fleet_view` with ``engine="vector"`` (target < 1 s). Baseline measured in
the same run: ``engine="per-instance"`` (``assess_leak`` on every instance's raw samples; forked workers
as in the default, and serial with ``workers=1``). Also the CSV.gz load time. Prints medians and ratios.

Part 2 (``--prometheus N,...``): per N, the fleet (1 day at 60 s) is written as OpenMetrics,
backfilled with ``promtool tsdb create-blocks-from openmetrics`` and served by a real ``prometheus``;
then :func:`zcnb.fleet.fleet_from_prometheus` runs in a child process (its own peak RSS) in baseline
mode (server-side ``min_over_time``), and for N <= 1,000 also in raw mode as the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MIB = 2**20


def generate(n_instances: int, n_points: int, *, step_s: float = 15.0, seed: int = 0,
             offset: int = 0, phased: bool = False) -> tuple[Any, dict[str, str]]:
    """A fleet with known modes: linear/step/sawtooth-rising leaks and flat/sawtooth/warm-up non-leaks.

    ``phased``: raw scrapes as a Prometheus server takes them, each target at its own offset within the
    interval, and every fifth instance joined the fleet half-way (its second half only); else every instance on
    one grid from the same start (what ``query_range`` returns)."""
    from zcnb.collect.prometheus import samples_frame

    rng = np.random.default_rng(seed)
    t = 1_764_000_000.0 + np.arange(n_points) * step_s
    hours = (t - t[0]) / 3600
    modes = ["linear", "step", "sawtooth-rising", "flat", "sawtooth-flat", "warmup"]
    names, ts, vals, truth = [], [], [], {}
    for i in range(offset, offset + n_instances):
        mode = modes[i % len(modes)]
        base = rng.uniform(40, 400) * MIB
        noise = rng.normal(0, 0.3 * MIB, n_points)
        if mode == "linear":
            y = base + rng.uniform(2, 60) * MIB * hours
        elif mode == "step":  # a leak that lands in chunks (e.g. per cron tick)
            y = base + np.floor(hours * 4) * rng.uniform(1, 8) * MIB
        elif mode == "sawtooth-rising":
            y = base + rng.uniform(2, 30) * MIB * hours + (np.arange(n_points) % 40) * 0.5 * MIB
        elif mode == "flat":
            y = base + 0 * hours
        elif mode == "sawtooth-flat":
            y = base + (np.arange(n_points) % 60) * 0.4 * MIB
        else:  # warm-up then plateau
            y = base + 30 * MIB * (1 - np.exp(-hours / 0.5))
        keep = slice(n_points // 2 if phased and i % 5 == 4 else 0, None)
        names.append(np.full(len(t[keep]), f"gw-{i:03d}:18789", dtype=object))
        ts.append(t[keep] + (rng.uniform(0, step_s) if phased else 0.0))
        vals.append((y + noise)[keep])
        truth[f"gw-{i:03d}:18789"] = "leak" if mode in ("linear", "step", "sawtooth-rising") else "no_leak"
    df = samples_frame(np.concatenate(names), np.concatenate(ts), np.concatenate(vals))
    return df, truth


def write_openmetrics(n_instances: int, n_points: int, path: Path, *, step_s: float = 60.0, seed: int = 0,
                      metric: str = "process_resident_memory_bytes") -> dict[str, str]:
    """The :func:`generate` fleet as an OpenMetrics file for ``promtool tsdb create-blocks-from openmetrics``.

    Written instance by instance (bounded memory for 10,000 instances); returns the truth per instance.
    """
    truth: dict[str, str] = {}
    batch = 50
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"# TYPE {metric} gauge\n")
        for first in range(0, n_instances, batch):
            n = min(batch, n_instances - first)
            df, part = generate(n, n_points, step_s=step_s, seed=seed + first, offset=first)
            truth.update(part)
            stamps = [f"{int(x)}" for x in df["timestamp"].iloc[:n_points].astype("int64") // 10**9]
            values = df["rss_bytes"].to_numpy()
            for j, inst in enumerate(dict.fromkeys(df["instance"])):
                head = f'{metric}{{instance="{inst}",job="zeptoclaw-gateway"}} '
                vals = values[j * n_points:(j + 1) * n_points]
                fh.write("".join(f"{head}{v:.0f} {t}\n" for v, t in zip(vals, stamps)))
        fh.write("# EOF\n")
    return truth


def _naive(df: Any, limit: float) -> int:
    """The loop a notebook would write: mask each instance out of the whole frame."""
    from zcnb.analysis import assess_leak

    n = 0
    for inst in df["instance"].unique():
        sub = df[df["instance"] == inst]
        if assess_leak(sub, column="rss_bytes", limit_bytes=limit).verdict == "leak":
            n += 1
    return n


def _median(v: list[float]) -> float:
    return statistics.median(v) if v else float("nan")


def _part1(args: argparse.Namespace, limit: float, tmp: str) -> dict[str, Any]:
    from zcnb.fleet import fleet_view, read_fleet_csv, write_fleet_csv

    df, truth = generate(args.instances, args.points, phased=args.shape == "phased")
    path = write_fleet_csv(df, Path(tmp) / "fleet.csv.gz")
    print(f"part 1 ({args.shape}): {args.instances} x {args.points} -> {len(df):,} points; "
          f"load avg {os.getloadavg()[0]:.2f}")
    fleet_view(df.iloc[: args.points * 20], limit_bytes=limit, engine="vector")  # warm imports outside the timing
    res: dict[str, list[float]] = {"load_s": [], "vector_s": [], "vector_cpu_s": [], "vector_default_s": [],
                                   "per_instance_s": [], "per_instance_serial_s": []}
    view = None
    for i in range(args.runs):
        t0 = time.perf_counter()
        read_fleet_csv(path)
        res["load_s"].append(time.perf_counter() - t0)
        c0, t0 = time.process_time(), time.perf_counter()
        view = fleet_view(df, limit_bytes=limit, keep_data=False, engine="vector", workers=1)
        res["vector_s"].append(time.perf_counter() - t0)
        res["vector_cpu_s"].append(time.process_time() - c0)
        t0 = time.perf_counter()
        fleet_view(df, limit_bytes=limit, keep_data=False, engine="vector")  # default workers (forked from 16)
        res["vector_default_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = fleet_view(df, limit_bytes=limit, keep_data=False, engine="per-instance")
        res["per_instance_s"].append(time.perf_counter() - t0)
        extra = ""
        if i == 0:
            t0 = time.perf_counter()
            fleet_view(df, limit_bytes=limit, keep_data=False, engine="per-instance", workers=1)
            res["per_instance_serial_s"].append(time.perf_counter() - t0)
            extra = f", per-instance serial {res['per_instance_serial_s'][-1]:.2f} s"
            same = {r.instance: (r.verdict, r.pattern, r.severity) for r in view.rows} == {
                r.instance: (r.verdict, r.pattern, r.severity) for r in ref.rows}
            print(f"  verdict/pattern/severity equal to the per-instance path: {same}")
        print(f"  run {i + 1}: vector serial {res['vector_s'][-1]:.2f} s (cpu {res['vector_cpu_s'][-1]:.2f} s), "
              f"vector default workers {res['vector_default_s'][-1]:.2f} s, "
              f"per-instance {res['per_instance_s'][-1]:.2f} s{extra}, csv load {res['load_s'][-1]:.2f} s")
    assert view is not None
    med = {k: _median(v) for k, v in res.items()}
    correct = sum({r.instance: r.verdict for r in view.rows}[k] == v for k, v in truth.items())
    print(f"  median: vector serial {med['vector_s']:.2f} s, default workers {med['vector_default_s']:.2f} s "
          f"(target < 1 s), per-instance {med['per_instance_s']:.2f} s "
          f"-> {med['per_instance_s'] / med['vector_default_s']:.1f}x; per-instance serial "
          f"{med['per_instance_serial_s']:.2f} s -> {med['per_instance_serial_s'] / med['vector_s']:.1f}x; "
          f"truth {correct}/{len(truth)}")
    note = next(n for n in view.notes if n.startswith("engine"))
    print(f"  {note}")
    return {"median": med, "raw": res, "verdicts_correct": correct, "route": note}


_CHILD = """
import json, sys, time
from zcnb.fleet import fleet_from_prometheus
url, start, end, mode, truth_path = sys.argv[1:6]
t0 = time.perf_counter(); c0 = time.process_time()
view = fleet_from_prometheus(url, 'process_resident_memory_bytes{job="zeptoclaw-gateway"}', start=float(start),
                             end=float(end), step="60s", limit_bytes=2 * 2**30, mode=mode, timeout_s=600)
el = time.perf_counter() - t0
truth = json.load(open(truth_path))
v = {r.instance: r.verdict for r in view.rows}
print(json.dumps({"elapsed_s": el, "cpu_s": time.process_time() - c0, "mode": view.mode,
                  # VmHWM: ru_maxrss would carry the (bigger) benchmark parent's peak over execve
                  "peak_rss_mib": next(int(x.split()[1]) for x in open("/proc/self/status")
                                       if x.startswith("VmHWM:")) / 1024,
                  "correct": sum(v.get(k) == t for k, t in truth.items()), "n": len(truth)}))
"""


def _start_prometheus(data: Path) -> tuple[Any, str]:
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        port = s_.getsockname()[1]
    (data.parent / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    proc = subprocess.Popen(["prometheus", f"--config.file={data.parent / 'prometheus.yml'}",
                             f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={data}",
                             "--storage.tsdb.retention.time=100y"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not start")


def _part2(sizes: list[int], tmp: str) -> dict[str, Any]:
    import subprocess

    out: dict[str, Any] = {}
    points, step = 1440, 60.0
    start = 1_764_000_000.0
    end = start + (points - 1) * step
    for n in sizes:
        d = Path(tmp) / f"prom-{n}"
        d.mkdir()
        t0 = time.perf_counter()
        truth = write_openmetrics(n, points, d / "fleet.om", step_s=step)
        (d / "truth.json").write_text(json.dumps(truth))
        t1 = time.perf_counter()
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(d / "fleet.om"), str(d / "data")],
                       check=True, capture_output=True)
        (d / "fleet.om").unlink()
        print(f"part 2: {n} instances x {points} points (1 day at 60 s): OpenMetrics {t1 - t0:.0f} s, "
              f"promtool {time.perf_counter() - t1:.0f} s; load avg {os.getloadavg()[0]:.2f}")
        proc, url = _start_prometheus(d / "data")
        try:
            for mode in (["baseline", "raw"] if n <= 1000 else ["baseline"]):
                env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
                r = subprocess.run([sys.executable, "-c", _CHILD, url, str(start), str(end), mode, str(d / "truth.json")],
                                   check=True, capture_output=True, text=True, env=env)
                res = json.loads(r.stdout.strip().splitlines()[-1])
                out[f"{n}_{mode}"] = res
                print(f"  {mode}: {res['elapsed_s']:.2f} s (cpu {res['cpu_s']:.2f} s), peak RSS "
                      f"{res['peak_rss_mib']:.0f} MiB, verdicts right {res['correct']}/{res['n']}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--points", type=int, default=5760, help="points per instance (5760 = 1 day at 15 s)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shape", choices=("aligned", "phased"), default="aligned",
                    help="aligned: one grid for all (query_range); phased: each target scraped at its own offset, "
                         "one in five joined half-way (raw scrapes)")
    ap.add_argument("--quick", action="store_true", help="50 instances x 1 day, 1 run")
    ap.add_argument("--prometheus", default="", help="comma-separated fleet sizes for part 2, e.g. 1000,10000")
    ap.add_argument("--skip-part1", action="store_true")
    ap.add_argument("--out", default=None, help="write results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.instances, args.runs = 50, 1
    result: dict[str, Any] = {"instances": args.instances, "points_per_instance": args.points, "runs": args.runs,
                              "shape": args.shape,
                              "loadavg_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="zcnb-bench-fleet-") as tmp:
        if not args.skip_part1:
            result["part1"] = _part1(args, 2 * 1024 * MIB, tmp)
        if args.prometheus:
            result["part2"] = _part2([int(x) for x in args.prometheus.split(",")], tmp)
    result["loadavg_end"] = os.getloadavg()[0]
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
