"""Fleet analysis benchmark: 200 instances x 1 day at 15 s (1.15M points), target < 10 s.

``python -m bench.fleet [--quick] [--runs N] [--out results.json]``

Generates a recorded-style fixture once (CSV.gz, ``instance,timestamp,rss_bytes``) in a temp
folder, then times, per run: loading it (:func:`zcnb.fleet.read_fleet_csv`) and
:func:`zcnb.fleet.fleet_view` (``assess_leak`` per instance). Baseline, measured in the same
run: the same fleet_view in one process (``workers=1``), and with ``--naive`` the loop a
notebook would write (boolean-mask each instance out of the whole frame, then
``assess_leak``). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MIB = 2**20


def generate(n_instances: int, n_points: int, *, step_s: float = 15.0, seed: int = 0,
             offset: int = 0) -> tuple[Any, dict[str, str]]:
    """A fleet with known modes: linear/step/sawtooth-rising leaks and flat/sawtooth/warm-up non-leaks."""
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
        names.append(np.full(n_points, f"gw-{i:03d}:18789", dtype=object))
        ts.append(t)
        vals.append(y + noise)
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--points", type=int, default=5760, help="points per instance (5760 = 1 day at 15 s)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="50 instances x 1 day, 1 run")
    ap.add_argument("--no-baseline", action="store_true", help="skip the serial (workers=1) baseline")
    ap.add_argument("--naive", action="store_true", help="also time the naive boolean-mask loop (slow: ~30 s)")
    ap.add_argument("--out", default=None, help="write results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.instances, args.runs = 50, 1
    from zcnb.fleet import fleet_view, read_fleet_csv, write_fleet_csv
    from zcnb.fleet.view import _auto_workers

    limit = 2 * 1024 * MIB
    with tempfile.TemporaryDirectory(prefix="zcnb-bench-fleet-") as tmp:
        t = time.perf_counter()
        df, truth = generate(args.instances, args.points)
        path = write_fleet_csv(df, Path(tmp) / "fleet.csv.gz")
        gen_s = time.perf_counter() - t
        size = path.stat().st_size
        print(f"fixture: {args.instances} x {args.points} = {len(df):,} points, {size / MIB:.1f} MiB csv.gz "
              f"(generated in {gen_s:.1f} s); fleet_view uses {_auto_workers(args.instances)} worker process(es)")
        fleet_view(df.iloc[: args.points], limit_bytes=limit)  # warm imports (scipy) outside the timing
        load, analyse, total, serial, naive = [], [], [], [], []
        view = None
        for i in range(args.runs):
            t0 = time.perf_counter()
            loaded = read_fleet_csv(path)
            t1 = time.perf_counter()
            view = fleet_view(loaded, limit_bytes=limit, keep_data=False)
            t2 = time.perf_counter()
            load.append(t1 - t0)
            analyse.append(t2 - t1)
            total.append(t2 - t0)
            extra = ""
            if i == 0 and not args.no_baseline:  # baselines once: keeps the default run near a minute
                t3 = time.perf_counter()
                fleet_view(loaded, limit_bytes=limit, keep_data=False, workers=1)
                serial.append(time.perf_counter() - t3)
                extra += f", serial fleet_view {serial[-1]:.2f} s"
            if i == 0 and args.naive:
                t3 = time.perf_counter()
                _naive(loaded, limit)
                naive.append(time.perf_counter() - t3)
                extra += f", naive loop {naive[-1]:.2f} s"
            print(f"run {i + 1}: load {load[-1]:.2f} s, fleet_view {analyse[-1]:.2f} s, total {total[-1]:.2f} s{extra}")
        assert view is not None
        verdicts = {r.instance: r.verdict for r in view.rows}
        correct = sum(verdicts[k] == v for k, v in truth.items())
        med = {k: statistics.median(v) for k, v in
               {"load_s": load, "fleet_view_s": analyse, "total_s": total, "serial_fleet_view_s": serial,
                "naive_loop_s": naive}.items() if v}
        print(f"median: load {med['load_s']:.2f} s, fleet_view {med['fleet_view_s']:.2f} s "
              f"({med['fleet_view_s'] / args.instances * 1000:.0f} ms/instance), total {med['total_s']:.2f} s "
              f"(target < 10 s for 200 x 5760)")
        if "serial_fleet_view_s" in med:
            print(f"baseline serial fleet_view (workers=1): {med['serial_fleet_view_s']:.2f} s; "
                  f"speed-up {med['serial_fleet_view_s'] / med['fleet_view_s']:.2f}x; "
                  f"load share of total = {med['load_s'] / med['total_s']:.0%}")
        if "naive_loop_s" in med:
            print(f"baseline naive mask loop: {med['naive_loop_s']:.2f} s; "
                  f"fleet_view / naive = {med['fleet_view_s'] / med['naive_loop_s']:.2f}x")
        print(f"verdicts matching the generated truth: {correct}/{len(truth)}")
        result = {"instances": args.instances, "points_per_instance": args.points, "rows": len(df),
                  "fixture_bytes": size, "runs": args.runs, "median": med,
                  "raw": {"load_s": load, "fleet_view_s": analyse, "total_s": total, "serial_fleet_view_s": serial,
                          "naive_loop_s": naive}, "workers": _auto_workers(args.instances),
                  "verdicts_correct": correct, "target_s": 10.0}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
