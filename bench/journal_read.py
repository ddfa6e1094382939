"""Benchmark: ``read_journal`` over a 1M-entry journal vs bare ``journalctl --file ... -o json > /dev/null``.

The journal is written by ``systemd-journal-remote --output=X.journal -`` from export-format entries (it splits
files at ~47 MB; both sides read them with ``--file='X*.journal'``). Target: overhead (zcnb / bare) < 1.5x.
Rounds alternate bare / zcnb; medians of wall time are compared, CPU seconds (user+sys, journalctl included)
are printed too because the machine is shared. ``journalctl -o export`` (what ``read_journal`` runs) is timed
for information.

    python -m bench.journal_read [--entries 1000000] [--repeat 3] [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

UNIT = "zeptoclaw-gateway.service"
_MESSAGES = (
    'info: [agent] tool skill args={{"name":"git_workflow","command":"/git-status {n}"}}',
    "info: [nim] request tokens={n} latency_ms=31",
    "info: [whatsapp] message from +4915{n} delivered",
    "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header",
    "info: [agent] turn started session=s{n}",
)


def entries(n: int, *, seed: int = 0) -> Any:
    rng = random.Random(seed)
    t = 1_795_900_000_000_000
    for i in range(n):
        yield {"__REALTIME_TIMESTAMP": t + i * 20_000, "_SYSTEMD_USER_UNIT": UNIT, "SYSLOG_IDENTIFIER": "zeptoclaw-gateway",
               "_PID": 4100 if i < n // 2 else 4101, "PRIORITY": 6,
               "MESSAGE": rng.choice(_MESSAGES).format(n=rng.randint(1, 999999))}


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare(pattern: str, output: str = "json") -> tuple[float, float]:
    """Wall and CPU seconds of ``journalctl --file=PATTERN -o OUTPUT --no-pager > /dev/null``."""
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(["journalctl", f"--file={pattern}", "-o", output, "--no-pager"], stdout=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - t0, _cpu() - c0


def ours(pattern: str) -> tuple[float, float, int]:
    """Wall and CPU seconds of reading every entry through ``read_journal``, and the entry count."""
    from zcnb.logs.journal import read_journal

    c0, t0 = _cpu(), time.perf_counter()
    n = sum(1 for _ in read_journal(UNIT, files=[pattern]))
    return time.perf_counter() - t0, _cpu() - c0, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.journal_read", description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100k entries")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    from zcnb.logs.journal import write_journal

    n = 100_000 if args.quick else args.entries
    res: dict[str, Any] = {"entries": n}
    with tempfile.TemporaryDirectory(prefix="zcnb-jbench-") as tmp:
        t0 = time.perf_counter()
        files = write_journal(entries(n), Path(tmp) / "bench.journal")
        res["write_s"] = time.perf_counter() - t0
        res["files"] = len(files)
        res["journal_mb"] = sum(f.stat().st_size for f in files) / (1 << 20)
        print(f"wrote {n} entries into {len(files)} journal file(s), {res['journal_mb']:.0f} MB, in {res['write_s']:.1f} s")
        pattern = str(Path(tmp) / "bench*.journal")
        b, z, x = [], [], []
        for _ in range(args.repeat):
            b.append(bare(pattern))
            wall, cpu, got = ours(pattern)
            z.append((wall, cpu))
            if got != n:
                raise SystemExit(f"read_journal returned {got} entries, expected {n}")
            x.append(bare(pattern, "export"))
    med = statistics.median
    res.update({"repeat": args.repeat,
                "bare_journalctl_s": med(w for w, _ in b), "bare_journalctl_cpu_s": med(c for _, c in b),
                "read_journal_s": med(w for w, _ in z), "read_journal_cpu_s": med(c for _, c in z),
                "journalctl_export_s": med(w for w, _ in x), "runs": {"bare": b, "read_journal": z, "export": x}})
    res["overhead"] = res["read_journal_s"] / res["bare_journalctl_s"]
    res["cpu_overhead"] = res["read_journal_cpu_s"] / res["bare_journalctl_cpu_s"]
    res["read_journal_entries_per_s"] = n / res["read_journal_s"]
    print(f"bare journalctl -o json  : median {res['bare_journalctl_s']:.2f} s ({n / res['bare_journalctl_s']:.0f} "
          f"entries/s), CPU {res['bare_journalctl_cpu_s']:.2f} s")
    print(f"zcnb read_journal        : median {res['read_journal_s']:.2f} s ({res['read_journal_entries_per_s']:.0f} "
          f"entries/s), CPU {res['read_journal_cpu_s']:.2f} s (journalctl included)")
    print(f"journalctl -o export     : median {res['journalctl_export_s']:.2f} s (what read_journal runs; info)")
    print(f"overhead: {res['overhead']:.2f}x wall, {res['cpu_overhead']:.2f}x CPU  (target < 1.5, "
          f"medians of {args.repeat})")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
