"""Record the real-process memory recordings of this folder with zcnb's own sampler.

    PYTHONPATH=. python tests/data/recordings/record.py [NAME ...]

Each recording starts a small program (workload.py, or leak.c built with cc) whose memory follows one
pattern, samples it with :class:`zcnb.collect.sampling.Sampler` (psutil, 1 Hz) for the given duration and
stops it. The limit in the samples header is what the sampler detects on this host (cgroup limit, else
MemTotal), except where a recording gives one (a unit's MemoryMax the harness stands in for). The
expected verdict of each file is in manifest.json (``expect``; ``accept`` lists other verdicts that are
also right, e.g. inconclusive for a window too short to tell).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from zcnb.collect.memlimit import MemoryLimit
from zcnb.collect.process import ProcessQuery
from zcnb.collect.sampling import Sampler

HERE = Path(__file__).resolve().parent
GIB = 1024**3
MIB = 1024**2
PY = [sys.executable, str(HERE / "workload.py")]

# name: (command args, duration s, limit or None (detect), expectation)
RECORDINGS: dict[str, dict] = {
    "py_linear": {"cmd": ["linear", "--rate-kib-s", "60"], "duration": 200,
                  "expect": {"verdict": "leak", "severity": ["moderate"]}},
    "c_linear": {"cmd": ["C", "linear", "40"], "duration": 200,
                 "expect": {"verdict": "leak", "severity": ["moderate", "low"]}},
    "py_fast_2g": {"cmd": ["linear", "--rate-kib-s", "300"], "duration": 180, "limit": 2 * GIB,
                   "expect": {"verdict": "leak", "severity": ["high"]}},
    "py_catastrophic_512m": {"cmd": ["linear", "--rate-kib-s", "2048"], "duration": 120, "limit": 512 * MIB,
                             "expect": {"verdict": "leak", "severity": ["catastrophic"]}},
    "py_sawflat": {"cmd": ["sawflat", "--period-s", "15", "--amp-mib", "12"], "duration": 200,
                   "expect": {"verdict": "no_leak"}},
    "py_sawrise": {"cmd": ["sawrise", "--period-s", "15", "--amp-mib", "12", "--rate-kib-s", "60"],
                   "duration": 200, "expect": {"verdict": "leak", "severity": ["moderate"]}},
    "py_warmup": {"cmd": ["warmup", "--cache-mib", "40", "--fill-s", "30"], "duration": 200,
                  "expect": {"verdict": "no_leak"}},
    "py_decel": {"cmd": ["decel", "--cache-mib", "60", "--tau-s", "20"], "duration": 180,
                 "expect": {"verdict": "no_leak"}},
    "c_decel": {"cmd": ["C", "decel", "0", "60", "20"], "duration": 180, "expect": {"verdict": "no_leak"}},
    "py_decel_tau60": {"cmd": ["decel", "--cache-mib", "80", "--tau-s", "60", "--seed", "3"], "duration": 300,
                       "expect": {"verdict": "no_leak"}},
    "py_decel_short": {"cmd": ["decel", "--cache-mib", "60", "--tau-s", "120", "--seed", "4"], "duration": 90,
                       "expect": {"verdict": "inconclusive", "accept": ["no_leak"]}},
    "py_step": {"cmd": ["step", "--churn-mib", "4", "--seed", "1"], "duration": 200,
                "expect": {"verdict": "leak", "severity": ["moderate", "high"]}},
    "py_step_2g": {"cmd": ["step", "--churn-mib", "4", "--seed", "2"], "duration": 200, "limit": 2 * GIB,
                   "expect": {"verdict": "leak", "severity": ["high"]}},
    "py_flat": {"cmd": ["flat", "--churn-mib", "3"], "duration": 200, "expect": {"verdict": "no_leak"}},
    "py_flat_60": {"cmd": ["flat", "--churn-mib", "2", "--seed", "5"], "duration": 60,
                   "expect": {"verdict": "no_leak"}},
    "py_fast_60": {"cmd": ["linear", "--rate-kib-s", "500", "--seed", "6"], "duration": 60,
                   "expect": {"verdict": "leak", "severity": ["high"]}},
    "py_decel_60": {"cmd": ["decel", "--cache-mib", "60", "--tau-s", "20", "--seed", "7"], "duration": 60,
                    "expect": {"verdict": "no_leak", "accept": ["inconclusive"]}},
}


def _command(cmd: list[str], build: Path) -> list[str]:
    if cmd[0] == "C":
        exe = build / "leak"
        if not exe.exists():
            subprocess.run(["cc", "-O2", "-o", str(exe), str(HERE / "leak.c"), "-lm"], check=True)
        return [str(exe), *cmd[1:]]
    return [*PY, *cmd]


def record(name: str, spec: dict, build: Path, manifest: dict) -> None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    proc = subprocess.Popen(_command(spec["cmd"], build), env=env, stdout=subprocess.DEVNULL)
    out = HERE / f"{name}.csv"
    out.unlink(missing_ok=True)
    limit = spec.get("limit")
    given = MemoryLimit(limit, f"MemoryMax={limit} of the recorded unit (set by the recording harness)") \
        if limit else None
    try:
        summary = Sampler(out, query=ProcessQuery(pid=proc.pid), sources=("psutil",), interval_s=1.0,
                          duration_s=float(spec["duration"]), progress=False, memory_limit=given).run()
    finally:
        proc.kill()
        proc.wait()
    manifest[name] = {"program": " ".join(spec["cmd"]), "duration_s": spec["duration"], **spec["expect"],
                      "samples": summary.samples}
    print(f"{name}: {summary.samples} samples", flush=True)


def main(names: list[str]) -> None:
    chosen = names or list(RECORDINGS)
    mpath = HERE / "manifest.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        threads = [threading.Thread(target=record, args=(n, RECORDINGS[n], Path(tmp), manifest)) for n in chosen]
        if any(RECORDINGS[n]["cmd"][0] == "C" for n in chosen):
            _command(["C"], Path(tmp))
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    mpath.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
