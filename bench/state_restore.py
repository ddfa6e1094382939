"""Benchmark: zcnb's safe restore (verify, stage while hashing, flush, atomic swap, quarantine, verify) vs the
runbook's ``rm -rf`` + ``cp -r`` on the same tree, in the same run.

python -m bench.state_restore [--shapes small,big,deep,mixed] [--repeat R] [--quick] [--cold] [--out results.json]

Tree shapes: ``small`` 2,000 session files of ~2 KB (the issue's case), ``big`` 4 files of 32 MiB, ``deep`` 40
nested folders with 25 files each, ``mixed`` 1,000 sessions + 300 notes in 30 nested folders + 4 files of 8 MiB +
a few relative symlinks. For each repeat a fresh tree is made, then (in alternating order) zcnb's restore and the
runbook's commands are timed on it; ``sync`` runs before each timed part so neither pays for the other's
unwritten data. zcnb is timed twice: the whole user path (the dry run, which verifies every byte of the backup,
+ ``execute``, which reuses that verification while the backup is unchanged) and the ``execute`` call alone.
``rm -rf`` + ``cp -r`` + ``sync -f`` (the runbook's commands made durable, as zcnb's copy is) is a second baseline.

``--cold`` also drops the backup's and the state's pages from the page cache before every timed part
(``posix_fadvise(DONTNEED)`` after ``sync``; no root needed), so the first read of each comes from the disk: rows
``<shape>-cold``. CPU seconds are user + system time of the bench process (zcnb, threads included) and of the
child processes (``rm``, ``cp``, ``sync``). The 1-minute load average is recorded before and after each shape.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

SHAPES = ("small", "big", "deep", "mixed")
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


def _make_mixed(state: Path) -> None:
    _make_small(state, files=1000)
    folder = state / "workspace"
    for level in range(30):
        folder = folder / f"d{level:02d}"
        folder.mkdir(parents=True)
        for i in range(10):
            (folder / f"note-{i:02d}.md").write_text(f"level {level} note {i}\n" * 60)
    (state / "memory").mkdir()
    for i in range(4):
        with open(state / "memory" / f"arena-{i}.bin", "wb") as fh:
            fh.write(os.urandom(8 << 20))
    (state / "skills").mkdir()
    for i in range(5):
        (state / "skills" / f"skill-{i}.md").write_text(f"# skill {i}\n")
        os.symlink(f"../skills/skill-{i}.md", state / "workspace" / f"skill-{i}.md")


MAKERS: dict[str, Callable[[Path], None]] = {"small": _make_small, "big": _make_big, "deep": _make_deep,
                                             "mixed": _make_mixed}


def _drop_cache(*trees: Path) -> None:
    """Evict the trees' file pages from the page cache (after a sync, so they are clean and can go)."""
    subprocess.run(["sync"], check=True)
    for tree in trees:
        for dirpath, _dirs, files in os.walk(tree):
            for name in files:
                p = os.path.join(dirpath, name)
                if os.path.islink(p):
                    continue
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _runbook(root: Path, *, durable: bool, cold: bool) -> tuple[float, float]:
    """The runbook's quick restore: delete the current state's entries, copy the backup's in (no copy kept).
    Returns (seconds, CPU seconds of the commands)."""
    subprocess.run(["sync"], check=True)
    if cold:
        _drop_cache(root / "backups", root / "state")
    c0 = _cpu_children()
    t0 = time.perf_counter()
    for p in (root / "state").iterdir():
        subprocess.run(["rm", "-rf", str(p)], check=True)
    subprocess.run(["cp", "-r", *[str(p) for p in (root / "backups" / BACKUP / "state").iterdir()], str(root / "state")],
                   check=True)
    os.chmod(root / "state", 0o700)
    if durable:
        subprocess.run(["sync", "-f", str(root / "state")], check=True)
    return time.perf_counter() - t0, _cpu_children() - c0


def _zcnb(root: Path, *, cold: bool) -> tuple[float, float, float]:
    """Dry run + execute: (seconds of both, seconds of the execute, CPU seconds of both)."""
    from zcnb.state import restore_state

    kw = {"state_dir": root / "state", "backups_dir": root / "backups",
          "process_pattern": f"zcnb-bench-no-gateway-{uuid.uuid4().hex}"}
    subprocess.run(["sync"], check=True)
    if cold:
        _drop_cache(root / "backups", root / "state")
    c0 = _cpu_self()
    t0 = time.perf_counter()
    plan = restore_state("latest", **kw)
    t1 = time.perf_counter()
    res = restore_state("latest", execute=True, confirm=plan.plan_id, **kw)
    t2 = time.perf_counter()
    assert res.outcome == "ok", res.message
    assert res.details["verify"]["reused_verification_of"], "the execute did not reuse the dry run's verification"
    return t2 - t0, t2 - t1, _cpu_self() - c0


def run_shape(shape: str, repeat: int, work: Path, *, cold: bool = False) -> dict[str, object]:
    full, execute, base, base_sync = [], [], [], []
    cpu_zcnb, cpu_base = [], []
    load_before = os.getloadavg()[0]
    for n in range(repeat):
        root = work / f"{shape}-{n}"
        MAKERS[shape](root / "backups" / BACKUP / "state")
        shutil.copytree(root / "backups" / BACKUP / "state", root / "state", symlinks=True)
        (root / "state" / "metadata.json").write_text('{"old": true}')

        def zc(root: Path = root) -> None:
            t_full, t_exec, cpu = _zcnb(root, cold=cold)
            full.append(t_full)
            execute.append(t_exec)
            cpu_zcnb.append(cpu)

        def rb(durable: bool, root: Path = root) -> None:
            t, cpu = _runbook(root, durable=durable, cold=cold)
            (base_sync if durable else base).append(t)
            if not durable:
                cpu_base.append(cpu)

        steps: list[Callable[[], None]] = [zc, lambda: rb(False), lambda: rb(True)]
        for step in (steps if n % 2 == 0 else steps[::-1]):
            step()
        shutil.rmtree(root)
    med = {k: statistics.median(v) for k, v in
           (("zcnb_full_s", full), ("zcnb_execute_s", execute), ("rm_cp_s", base), ("rm_cp_sync_s", base_sync),
            ("zcnb_full_cpu_s", cpu_zcnb), ("rm_cp_cpu_s", cpu_base))}
    return {"shape": shape + ("-cold" if cold else ""), "repeat": repeat, **{k: round(v, 4) for k, v in med.items()},
            "ratio_full_vs_rm_cp": round(med["zcnb_full_s"] / med["rm_cp_s"], 2),
            "ratio_execute_vs_rm_cp": round(med["zcnb_execute_s"] / med["rm_cp_s"], 2),
            "ratio_full_vs_rm_cp_sync": round(med["zcnb_full_s"] / med["rm_cp_sync_s"], 2),
            "ratio_execute_vs_rm_cp_sync": round(med["zcnb_execute_s"] / med["rm_cp_sync_s"], 2),
            "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--cold", action="store_true", help="also run each shape with the page cache dropped")
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
        if a.cold:
            results += [run_shape(s, repeat, work, cold=True) for s in shapes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
