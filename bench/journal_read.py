"""Benchmark: ``read_journal`` over a 1M-entry journal vs bare ``journalctl --file ... -o json > /dev/null``.

The journal is written by ``systemd-journal-remote --output=X.journal -`` from export-format entries (it splits
files at ~47 MB; both sides read them with ``--file='X*.journal'``). Target: overhead (zcnb / bare) < 1.5x.

    python -m bench.journal_read [--entries 1000000] [--repeat 1] [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import random
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


def bare(pattern: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["journalctl", f"--file={pattern}", "-o", "json", "--no-pager"], stdout=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - t0


def ours(pattern: str) -> tuple[float, int]:
    from zcnb.journal import read_journal

    t0 = time.perf_counter()
    n = sum(1 for _ in read_journal(UNIT, files=[pattern]))
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.journal_read", description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="100k entries")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    from zcnb.journal import write_journal

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
        b, z = [], []
        for _ in range(args.repeat):
            b.append(bare(pattern))
            dt, got = ours(pattern)
            z.append(dt)
            if got != n:
                raise SystemExit(f"read_journal returned {got} entries, expected {n}")
    res.update({"bare_journalctl_s": statistics.median(b), "read_journal_s": statistics.median(z)})
    res["overhead"] = res["read_journal_s"] / res["bare_journalctl_s"]
    res["read_journal_entries_per_s"] = n / res["read_journal_s"]
    print(f"bare journalctl -o json : median {res['bare_journalctl_s']:.2f} s ({n / res['bare_journalctl_s']:.0f} entries/s)")
    print(f"zcnb read_journal       : median {res['read_journal_s']:.2f} s ({res['read_journal_entries_per_s']:.0f} entries/s)")
    print(f"overhead: {res['overhead']:.2f}x  (target < 1.5)")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
