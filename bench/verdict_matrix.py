"""Confusion matrix of assess_leak's verdicts on the labelled recordings (tests/data/recordings).

    python -m bench.verdict_matrix [--out results.json]

Every CSV of tests/data/recordings (real processes sampled by zcnb's sampler; labels in manifest.json)
plus two synthetic long series (a week at 1 Hz: +30 % per week gradual leak, and a flat week with daily
cycles) is read with ``read_samples`` and assessed with ``assess_leak(df)`` and nothing else, as
``zcnb analyze FILE`` does. A case is right when the verdict is the expected one (or one of ``accept``)
and, for a leak, the severity is one of the expected classes. Runs against whatever ``zcnb`` is on the
path, so the same script measures an older checkout (``PYTHONPATH=/path/to/old python bench/verdict_matrix.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent.parent / "tests" / "data" / "recordings"
MIB = 1024.0 * 1024.0
VERDICTS = ("leak", "no_leak", "inconclusive")


def week_csv(path: Path, *, leak: bool) -> None:
    """A week at 1 Hz of a 100 MB process: +30 % over the week (176 KiB/h) with noise, or flat with daily cycles."""
    n = 7 * 86400
    rng = np.random.default_rng(18)
    t = np.arange(n, dtype=float)
    y = 100e6 + rng.normal(0, 0.4 * MIB, n) + 2 * MIB * np.sin(2 * np.pi * t / 86400)
    if leak:
        y += 30e6 * t / t[-1]
    y = np.round(y / 4096) * 4096
    stamps = np.datetime64("2026-11-20T00:00:00", "s") + t.astype("timedelta64[s]")
    with path.open("w") as f:
        f.write("# zcnb samples v1\n# sources: psutil   interval_s: 1\n"
                "timestamp,pid,source,rss_bytes,vms_bytes,uss_bytes,pss_bytes,cgroup_bytes,metrics_rss_bytes,"
                "metrics_vms_bytes,event,note\n")
        lines = [f"{s}+00:00,4242,psutil,{int(v)},,,,,,,,\n" for s, v in zip(stamps.astype(str), y)]
        f.writelines(lines)


def cases(tmp: Path, synthetic: bool) -> list[tuple[str, Path, dict[str, Any]]]:
    manifest = json.loads((HERE / "manifest.json").read_text())
    out = [(name, HERE / f"{name}.csv", spec) for name, spec in sorted(manifest.items())]
    if synthetic:
        for name, leak in (("synthetic_week_gradual", True), ("synthetic_week_flat", False)):
            path = tmp / f"{name}.csv"
            week_csv(path, leak=leak)
            out.append((name, path, {"verdict": "leak", "severity": ["low"]} if leak else {"verdict": "no_leak"}))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from zcnb.analysis import assess_leak
    from zcnb.collect.samples_csv import read_samples

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--no-synthetic", action="store_true", help="recordings only (skip the two week series)")
    args = ap.parse_args(argv)
    rows = []
    matrix = {e: dict.fromkeys(VERDICTS, 0) for e in VERDICTS}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, spec in cases(Path(tmp), not args.no_synthetic):
            a = assess_leak(read_samples(path))
            ok_verdict = a.verdict == spec["verdict"] or a.verdict in spec.get("accept", [])
            ok_sev = a.verdict != "leak" or a.severity in spec.get("severity", [a.severity])
            matrix[spec["verdict"]][a.verdict] += 1
            ttl = a.time_to_limit_s
            rows.append({"name": name, "expected": spec["verdict"], "accept": spec.get("accept", []),
                         "expected_severity": spec.get("severity"), "verdict": a.verdict, "pattern": a.pattern,
                         "severity": a.severity, "time_to_limit_s": ttl, "limit_source": a.limit_source,
                         "correct": bool(ok_verdict and ok_sev)})
            print(f"{'ok ' if ok_verdict and ok_sev else 'BAD'} {name:<24} expected {spec['verdict']:<12} "
                  f"{'/'.join(spec.get('severity', [])):<18} got {a.verdict:<12} {a.pattern:<16} {a.severity:<12} "
                  f"ttl {'-' if ttl is None else f'{ttl / 3600:.2f} h'}", flush=True)
    right = sum(r["correct"] for r in rows)
    print(f"\ncorrect (verdict, and severity class for leaks): {right}/{len(rows)}")
    print("confusion matrix (rows expected, columns got):")
    print(f"{'':<14}" + "".join(f"{v:>14}" for v in VERDICTS))
    for e in VERDICTS:
        print(f"{e:<14}" + "".join(f"{matrix[e][g]:>14}" for g in VERDICTS))
    result = {"correct": right, "total": len(rows), "matrix": matrix, "cases": rows,
              "zcnb": str(Path(sys.modules["zcnb"].__file__ or "").parent)}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
