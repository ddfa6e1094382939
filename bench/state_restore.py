"""Benchmark: zcnb's safe restore (verify, stage while hashing, flush, atomic swap, quarantine, verify) vs the
runbook's ``rm -rf`` + ``cp -r`` on the same tree, in the same run.

python -m bench.state_restore [--shapes small,big,deep] [--repeat R] [--quick] [--out results.json]

Tree shapes: ``small`` 2,000 session files of ~2 KB (the issue's case), ``big`` 4 files of 32 MiB, ``deep`` 40
nested folders with 25 files each. For each repeat a fresh tree is made, then (in alternating order) zcnb's
restore and the runbook's commands are timed on it; ``sync`` runs before each timed part so neither pays for
the other's unwritten data. zcnb is timed twice: the whole user path (dry run + ``execute``, each call
verifies the backup) and the ``execute`` call alone. ``rm -rf`` + ``cp -r`` + ``sync -f`` (the runbook's
commands made durable, as zcnb's copy is) is reported as a second baseline.
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
import uuid
from collections.abc import Callable
from pathlib import Path

SHAPES = ("small", "big", "deep")
BACKUP = "20260101-000000"


def _make_small(state: Path, files: int = 2000) -> None:
    for i in range(files):
        p = state / "sessions" / f"s-{i:05d}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"id": i, "turns": ["x" * 200] * 10}))
    (state / "metadata.json").write_text("{}")


def _make_big(state: Path, files: int = 4, size: int = 32 << 20) -> None:
    (state / "memory").mkdir(parents=True)
    for i in range(files):
        with open(state / "memory" / f"arena-{i}.bin", "wb") as fh:
            fh.write(os.urandom(size))
    (state / "metadata.json").write_text("{}")


def _make_deep(state: Path, depth: int = 40, per_level: int = 25) -> None:
    folder = state / "workspace"
    for level in range(depth):
        folder = folder / f"d{level:02d}"
        folder.mkdir(parents=True)
        for i in range(per_level):
            (folder / f"note-{i:02d}.md").write_text(f"level {level} note {i}\n" * 40)
    (state / "metadata.json").write_text("{}")


MAKERS: dict[str, Callable[[Path], None]] = {"small": _make_small, "big": _make_big, "deep": _make_deep}


def _runbook(root: Path, *, durable: bool) -> float:
    """The runbook's quick restore: delete the current state's entries, copy the backup's in (no copy kept)."""
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    for p in (root / "state").iterdir():
        subprocess.run(["rm", "-rf", str(p)], check=True)
    subprocess.run(["cp", "-r", *[str(p) for p in (root / "backups" / BACKUP / "state").iterdir()], str(root / "state")],
                   check=True)
    os.chmod(root / "state", 0o700)
    if durable:
        subprocess.run(["sync", "-f", str(root / "state")], check=True)
    return time.perf_counter() - t0


def _zcnb(root: Path) -> tuple[float, float]:
    from zcnb.state import restore_state

    kw = {"state_dir": root / "state", "backups_dir": root / "backups",
          "process_pattern": f"zcnb-bench-no-gateway-{uuid.uuid4().hex}"}
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    plan = restore_state("latest", **kw)
    t1 = time.perf_counter()
    res = restore_state("latest", execute=True, confirm=plan.plan_id, **kw)
    t2 = time.perf_counter()
    assert res.outcome == "ok", res.message
    return t2 - t0, t2 - t1


def run_shape(shape: str, repeat: int, work: Path) -> dict[str, object]:
    full, execute, base, base_sync = [], [], [], []
    for n in range(repeat):
        root = work / f"{shape}-{n}"
        MAKERS[shape](root / "backups" / BACKUP / "state")
        shutil.copytree(root / "backups" / BACKUP / "state", root / "state")
        (root / "state" / "metadata.json").write_text('{"old": true}')
        steps: list[Callable[[], None]] = [
            lambda: (lambda t: (full.append(t[0]), execute.append(t[1])))(_zcnb(root)),
            lambda: base.append(_runbook(root, durable=False)),
            lambda: base_sync.append(_runbook(root, durable=True)),
        ]
        for step in (steps if n % 2 == 0 else steps[::-1]):
            step()
        shutil.rmtree(root)
    med = {k: statistics.median(v) for k, v in
           (("zcnb_full_s", full), ("zcnb_execute_s", execute), ("rm_cp_s", base), ("rm_cp_sync_s", base_sync))}
    return {"shape": shape, "repeat": repeat, **{k: round(v, 4) for k, v in med.items()},
            "ratio_full_vs_rm_cp": round(med["zcnb_full_s"] / med["rm_cp_s"], 2),
            "ratio_execute_vs_rm_cp": round(med["zcnb_execute_s"] / med["rm_cp_s"], 2),
            "ratio_full_vs_rm_cp_sync": round(med["zcnb_full_s"] / med["rm_cp_sync_s"], 2)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--out")
    a = ap.parse_args()
    repeat = 3 if a.quick else a.repeat
    shapes = [s.strip() for s in a.shapes.split(",") if s.strip()]
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        ap.error(f"unknown shapes {unknown}; choose from {', '.join(SHAPES)}")
    work = Path(tempfile.mkdtemp(prefix="zcnb-bench-restore-"))
    try:
        results = [run_shape(s, repeat, work) for s in shapes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
