"""``zcnb fleet`` reads ``zcnb exporter``'s series when the gateways' own metrics have no memory, and says so.

History is backfilled into a real Prometheus (promtool) so the test needs no waiting: two gateways seen
through the exporter (one leaking, across a restart; one flat), and, in the second case, a gateway that exports
``process_resident_memory_bytes`` itself (then that is read, as before).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alerting_helpers import backfill
from prom_helpers import running_prometheus
from zcnb.config import DEFAULT_FLEET_QUERY, EXPORTER_FLEET_QUERY
from zcnb.fleet import fleet_from_prometheus

pytestmark = pytest.mark.slow  # a real Prometheus each (a few seconds)

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def _exporter_history(now: float) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    lab = 'instance="{}",job="zcnb-exporter",unit="zeptoclaw-gateway.service",pid="{}"'
    for i in range(0, 1800, 15):
        t = now - 1800 + i
        pid = 100 if i < 900 else 200  # a restart half way: memory drops, then grows again
        leak = 50 * MiB + ((i % 900) / 60) * 3 * MiB
        out.setdefault(f"zcnb_gateway_resident_memory_bytes{{{lab.format('host/leaky', pid)}}}", []).append((t, leak))
        flat = 40 * MiB + (i % 45) * 1000
        out.setdefault(f"zcnb_gateway_resident_memory_bytes{{{lab.format('host/flat', 300)}}}", []).append((t, flat))
    return out


def _fleet_cli(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "zcnb", "fleet", "--prometheus-url", url, "--since", "40m",
                           "--no-rule", *extra], capture_output=True, text=True, env=env, check=False, timeout=120)


def test_fleet_falls_back_to_the_exporter_and_says_so(tmp_path: Path) -> None:
    now = time.time()
    backfill(tmp_path, _exporter_history(now))
    with running_prometheus(tmp_path, lambda _p: "global:\n  scrape_interval: 15s\n") as url:
        view = fleet_from_prometheus(url, DEFAULT_FLEET_QUERY, start=now - 2400, end=now, step="15s",
                                     fallback_query=EXPORTER_FLEET_QUERY)
        out = _fleet_cli(url, "--json", "-")
        explicit = _fleet_cli(url, "--query", DEFAULT_FLEET_QUERY)
    verdicts = {r.instance: r.verdict for r in view.rows}
    assert verdicts == {"host/leaky": "leak", "host/flat": "no_leak"}
    assert view.notes[0].startswith(f"{DEFAULT_FLEET_QUERY} has no series")
    assert EXPORTER_FLEET_QUERY in view.notes[0] and view.rule.query == EXPORTER_FLEET_QUERY
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert any("read the zcnb exporter's series instead" in n for n in doc["notes"])
    assert doc["restart_order"] == ["host/leaky"]
    # an explicit --query means exactly that query: no fallback, and the empty result is an error
    assert explicit.returncode == 2 and "returned no data" in explicit.stderr


def test_fleet_keeps_the_gateways_own_memory_metric_when_there_is_one(tmp_path: Path) -> None:
    now = time.time()
    history = _exporter_history(now)
    own = [(t, 60.0 * MiB + k * 50_000) for k, (t, _v) in enumerate(history[next(iter(history))])]
    history['process_resident_memory_bytes{instance="gw-own:18789",job="zeptoclaw-gateway"}'] = own
    backfill(tmp_path, history)
    with running_prometheus(tmp_path, lambda _p: "global:\n  scrape_interval: 15s\n") as url:
        view = fleet_from_prometheus(url, DEFAULT_FLEET_QUERY, start=now - 2400, end=now, step="15s",
                                     fallback_query=EXPORTER_FLEET_QUERY)
    assert [r.instance for r in view.rows] == ["gw-own:18789"]
    assert not any("exporter" in n for n in view.notes) and view.rule.query == DEFAULT_FLEET_QUERY
