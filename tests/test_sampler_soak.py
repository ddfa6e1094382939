"""Soak (issue 7): the sampler at 10 Hz for 20 s on a real child; see bench/sampler_soak.py for the long run."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from collection_helpers import child

from zcnb.sampling import sample


@pytest.mark.slow
def test_soak_20s_at_10hz_jitter_and_own_rss(tmp_path: Path) -> None:
    """Shorter version of bench/sampler_soak.py: p99 schedule lateness < 50 ms (shared CPU), own RSS growth < 2 MiB."""
    lateness = [0.0] * 400
    with child("zcnb-soak-target") as c:
        sample(tmp_path / "warm.csv", pid=c.pid, interval_s=0.1, duration_s=1.0, progress=False)  # imports, caches
        me = psutil.Process()
        rss0 = me.memory_info().rss

        def hook(k: int, late: float) -> None:
            if k < len(lateness):
                lateness[k] = late

        summary = sample(tmp_path / "soak.csv", pid=c.pid, interval_s=0.1, duration_s=20.0, progress=False,
                         tick_hook=hook, sources=["psutil", "cgroup"])
        growth = me.memory_info().rss - rss0
    taken = sorted(lateness[: summary.samples])
    p99 = taken[int(0.99 * (len(taken) - 1))]
    assert summary.samples + summary.missed_ticks == 200
    assert p99 < 0.050, f"p99 lateness {p99 * 1000:.1f} ms"
    assert growth < 2 * 2**20, f"RSS grew {growth / 2**20:.2f} MiB"
