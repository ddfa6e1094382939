"""Benchmark: ``zcnb leaks FILE`` on a big Zig leak report (streamed parse, bounded memory) vs the parser before.

Input: the real gateway's report (tests/data/leakreports/zig016_real_gateway.txt, 142 records: 140 at
parseRequest of which 20 end inside the standard library, 2 at token_auth) repeated to ``--records`` records
(~1.45 KB per record: 1M records are ~1.4 GB). Each parser runs in a fresh child process (``parse_leak_file`` and
``top_sites``) so its peak RSS is its own; wall and CPU seconds (user+sys) are the child's. Baseline (same run):
the parser of the commit given by ``--baseline-ref`` (default: the first parent of the streamed parser, read
with ``git show``), which reads the whole file, splits it into lines and keeps every record.

    python -m bench.leak_parse [--records 200000] [--repeat 3] [--baseline-ref REF] [--no-baseline] [--out F]
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

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "leakreports" / "zig016_real_gateway.txt"
_CHILD = r"""
import sys, time, importlib.util, json
sys.path.insert(0, {root!r})
import zcnb.leaks.model  # noqa: F401
if {old!r}:
    spec = importlib.util.spec_from_file_location("zcnb.leaks._parse_baseline", {old!r},
                                                  submodule_search_locations=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "zcnb.leaks"
    spec.loader.exec_module(mod)
else:
    import zcnb.leaks.parse as mod
t = time.perf_counter()
r = mod.parse_leak_file({path!r})
top = r.top_sites(3)
print(json.dumps({{"wall": time.perf_counter() - t, "records": getattr(r, "n_records", len(r.records)),
                  "top": [(s.function, s.records) for s in top]}}))
"""


def make_report(path: Path, records: int) -> int:
    one = FIXTURE.read_text()
    per = one.count("leaked:")
    copies = max(1, records // per)
    with path.open("w") as fh:
        for _ in range(copies):
            fh.write(one)
    return copies * per


def run_child(path: Path, old: str | None) -> dict[str, Any]:
    code = _CHILD.format(root=str(ROOT), old=old or "", path=str(path))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _pid, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {err[-2000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": wall, "parse_s": res["wall"], "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_mib": ru.ru_maxrss / 1024, "records": res["records"], "top": res["top"]}


def baseline_source(ref: str, tmp: Path) -> str:
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:zcnb/leaks/parse.py"], check=True,
                          capture_output=True, text=True).stdout
    p = tmp / "parse_baseline.py"
    p.write_text(text)
    return str(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-ref", default="main")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--quick", action="store_true", help="20,000 records, 1 repeat")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.quick:
        args.records, args.repeat = 20_000, 1
    with tempfile.TemporaryDirectory(prefix="zcnb-bench-leak-") as d:
        tmp = Path(d)
        report = tmp / "report.txt"
        n = make_report(report, args.records)
        size_mb = report.stat().st_size / 1e6
        old = None if args.no_baseline else baseline_source(args.baseline_ref, tmp)
        runs: dict[str, list[dict[str, Any]]] = {"zcnb": [], "baseline": []}
        for _ in range(args.repeat):
            runs["zcnb"].append(run_child(report, None))
            if old:
                runs["baseline"].append(run_child(report, old))
    load = os.getloadavg()
    out: dict[str, Any] = {"records": n, "size_mb": round(size_mb, 1), "repeat": args.repeat,
                           "load_avg": [round(x, 2) for x in load], "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for name, rs in runs.items():
        if not rs:
            continue
        out[name] = {k: round(statistics.median(r[k] for r in rs), 3) for k in ("wall_s", "parse_s", "cpu_s", "peak_mib")}
        out[name]["top"] = rs[0]["top"]
        out[name]["records_seen"] = rs[0]["records"]
    print(f"{n} records, {size_mb:.0f} MB, median of {args.repeat}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name in ("zcnb", "baseline"):
        if name in out:
            r = out[name]
            print(f"  {name:9} wall {r['wall_s']:7.2f} s  cpu {r['cpu_s']:7.2f} s  peak RSS {r['peak_mib']:8.1f} MiB  "
                  f"top {r['top'][0]}")
    if "baseline" in out:
        z, b = out["zcnb"], out["baseline"]
        out["ratio_wall"] = round(b["wall_s"] / z["wall_s"], 2)
        out["ratio_peak"] = round(b["peak_mib"] / z["peak_mib"], 2)
        print(f"  baseline / zcnb: wall {out['ratio_wall']}x, peak RSS {out['ratio_peak']}x")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    resource.getrusage(resource.RUSAGE_CHILDREN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
