"""Benchmark: zcnb's safe restore (stage, hash-verify, atomic swap, quarantine) vs the runbook's rm -rf + cp -r.

python -m bench.state_restore [--files N] [--repeat R] [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def _make(root: Path, files: int) -> None:
    for i in range(files):
        p = root / "state" / "sessions" / f"s-{i:05d}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"id": i, "turns": ["x" * 200] * 10}))
    (root / "state" / "metadata.json").write_text("{}")


def main() -> int:
    from zcnb.state import restore_state

    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    files, repeat = (200, 3) if a.quick else (a.files, a.repeat)
    zcnb_t, base_t = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            _make(root / "backups" / "20260101-000000", files)
            shutil.copytree(root / "backups" / "20260101-000000" / "state", root / "state")
            state, backups = root / "state", root / "backups"
            t0 = time.perf_counter()
            plan = restore_state("latest", state_dir=state, backups_dir=backups)
            restore_state("latest", state_dir=state, backups_dir=backups, execute=True, confirm=plan.plan_id)
            zcnb_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # the runbook's quick restore (deletes the current state)
            for p in (root / "state").iterdir():
                subprocess.run(["rm", "-rf", str(p)], check=True)
            subprocess.run(["cp", "-r", *[str(p) for p in (root / "backups" / "20260101-000000" / "state").iterdir()],
                            str(root / "state")], check=True)
            os.chmod(root / "state", 0o700)
            base_t.append(time.perf_counter() - t0)
    res = {"files": files, "repeat": repeat, "zcnb_restore_median_s": statistics.median(zcnb_t),
           "runbook_rm_cp_median_s": statistics.median(base_t)}
    res["ratio_vs_runbook"] = res["zcnb_restore_median_s"] / res["runbook_rm_cp_median_s"]
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
