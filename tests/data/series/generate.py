"""Regenerate the recorded memory-series fixtures (deterministic: fixed seeds).

    python tests/data/series/generate.py

Each CSV is in the zcnb samples format (docs/CONTRACTS.md "Samples"): 1 h at 5 s, psutil RSS/VMS/USS
with page-granular noise, gaps, and (sawtooth_rising) a restart. The file name is the expected pattern.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIB = 1024 * 1024
HEADER = ("timestamp,pid,source,rss_bytes,vms_bytes,uss_bytes,pss_bytes,cgroup_bytes,"
          "metrics_rss_bytes,metrics_vms_bytes,event,note")
START = np.datetime64("2026-11-28T10:00:00", "ms")


def _gc(t: np.ndarray, period: float, amp: float, rng: np.random.Generator) -> np.ndarray:
    """Allocations pile up during a cycle and are freed at its end (jittered cycle lengths)."""
    ends = np.cumsum(rng.uniform(0.8, 1.2, size=int(t[-1] / period) + 3) * period)
    idx = np.searchsorted(ends, t, side="right")
    begin = np.concatenate(([0.0], ends))[idx]
    return amp * (t - begin) / (ends[idx] - begin)


def _series(name: str, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = 48 * MIB
    pid = np.full(len(t), 4242)
    if name == "linear":
        y = base + 15 * MIB * t / 3600
    elif name == "sawtooth_rising":
        y = base + 12 * MIB * t / 3600 + _gc(t, 120, 6 * MIB, rng)
        after = t >= 2100  # restarted at 35 min: new pid, memory back near the start
        y[after] = base + 12 * MIB * (t[after] - 2100) / 3600 + _gc(t[after] - 2100, 120, 6 * MIB, rng)
        pid[after] = 5151
    elif name == "sawtooth_flat":
        y = base + _gc(t, 90, 8 * MIB, rng)
    elif name == "warmup_plateau":
        y = base + 24 * MIB * (1 - np.exp(-t / 420))
    elif name == "step":
        y = base + 6 * MIB * ((t >= 700).astype(float) + (t >= 1650) + (t >= 2800))
    else:  # flat
        y = base + 0.0 * t
    y = y + rng.normal(0, 0.15 * MIB, len(t))
    return np.round(y / 4096) * 4096, pid  # RSS moves in whole pages


def write(name: str, folder: Path, *, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(0, 3600, 5.0)
    y, pid = _series(name, t, rng)
    gaps = set(rng.choice(np.arange(10, len(t) - 10), size=3, replace=False).tolist())
    lines = ["# zcnb samples v1", f"# target: pid=4242 pattern=zeptoclaw-gateway fixture={name}",
             "# sources: psutil   interval_s: 5.0   started: 2026-11-28T10:00:00+00:00", HEADER]
    for i, (ti, yi) in enumerate(zip(t, y)):
        ts = str(START + np.timedelta64(int(ti * 1000), "ms")) + "+00:00"
        if i in gaps:
            lines.append(f"{ts},,,,,,,,,,gap,process not found (zeptoclaw-gateway)")
            continue
        event = "restart" if i and pid[i] != pid[i - 1] else ("start" if i == 0 else "")
        note = f"pid {pid[i - 1]} -> {pid[i]}" if event == "restart" else ""
        lines.append(f"{ts},{pid[i]},psutil,{int(yi)},{int(yi * 4.1)},{int(yi * 0.93)},,,,,{event},{note}")
    path = folder / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    folder = Path(__file__).resolve().parent
    for seed, name in enumerate(("linear", "sawtooth_rising", "sawtooth_flat", "warmup_plateau", "step", "flat")):
        print(write(name, folder, seed=100 + seed))


if __name__ == "__main__":
    main()
