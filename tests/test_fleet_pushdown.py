"""Baseline push-down (zcnb.fleet.pushdown) on a real Prometheus whose TSDB is backfilled by promtool.

1,000 instances x 1 day at 60 s with known modes (bench.fleet's generator: linear, step and
sawtooth-rising leaks; flat, sawtooth-flat and warm-up non-leaks) written as OpenMetrics, turned into
TSDB blocks by ``promtool tsdb create-blocks-from openmetrics``, served by ``prometheus``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from prom_helpers import prometheus_exe, running_prometheus

from bench.fleet import write_openmetrics
from zcnb.cli import main as cli_main
from zcnb.fleet import fleet_from_prometheus
from zcnb.fleet.pushdown import baseline_query, baseline_window, choose_mode, windows_per_request

GIB = 2**30
N, POINTS, STEP = 1000, 1440, 60.0
T0 = 1_764_000_000.0
QUERY = 'process_resident_memory_bytes{job="zeptoclaw-gateway"}'


def test_rules() -> None:
    assert choose_mode(300, 0, 86400, 15) == "raw" and choose_mode(400, 0, 86400, 15) == "baseline"
    assert baseline_window(0, 86400, 15) == 300.0  # 1 day over 300 windows = 288 s -> whole steps
    assert baseline_window(0, 86400, 15, gc_cycle_s=600) == 900.0
    assert baseline_query(QUERY, 300, 15) == f"min_over_time({QUERY}[5m])"
    assert baseline_query("max by (instance) (x)", 300, 15) == "min_over_time((max by (instance) (x))[5m:15s])"
    assert windows_per_request(10, 300, 15) == 11_000
    assert windows_per_request(10_000, 300, 15) == 100  # 10,000 series x 20 samples x 100 windows = 20 M


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    prometheus_exe()
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    tmp = tmp_path_factory.mktemp("pushdown")
    om = tmp / "fleet.om"
    truth = write_openmetrics(N, POINTS, om, step_s=STEP)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tmp / "data")],
                   check=True, capture_output=True, timeout=300)
    om.unlink()
    config = "global:\n  scrape_interval: 1h\nscrape_configs: []\n"
    with running_prometheus(tmp, lambda _port: config, extra_args=["--storage.tsdb.retention.time=100y"]) as url:
        yield url, truth


@pytest.mark.slow
def test_baseline_mode_verdicts_on_1000_instances(backfilled: tuple[str, dict[str, str]]) -> None:
    url, truth = backfilled
    end = T0 + (POINTS - 1) * STEP
    t0 = time.monotonic()
    view = fleet_from_prometheus(url, QUERY, start=T0, end=end, step="60s", limit_bytes=2 * GIB,
                                 raw_points_max=1_000_000)  # 1,000 x 1,440 = 1.44 M raw points: baseline
    elapsed = time.monotonic() - t0
    assert view.mode == "baseline"
    note = next(n for n in view.notes if n.startswith("mode: baseline"))
    assert f"min_over_time({QUERY}[5m])" in note and "1,440,000 > 1,000,000" in note
    verdicts = {r.instance: r.verdict for r in view.rows}
    assert len(verdicts) == N
    wrong = {k: (verdicts[k], v) for k, v in truth.items() if verdicts[k] != v}
    assert not wrong, wrong
    assert all(r.n_samples <= 288 for r in view.rows)  # only the baseline left the server
    assert view.rule_evaluated
    assert elapsed < 10, f"{elapsed:.1f} s"


@pytest.mark.slow
def test_small_fleet_stays_raw_and_agrees(backfilled: tuple[str, dict[str, str]],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url, truth = backfilled
    end = T0 + (POINTS - 1) * STEP
    q = 'process_resident_memory_bytes{instance=~"gw-00[0-9]:18789"}'
    raw = fleet_from_prometheus(url, q, start=T0, end=end, step="60s", limit_bytes=2 * GIB, evaluate_rule=False)
    base = fleet_from_prometheus(url, q, start=T0, end=end, step="60s", limit_bytes=2 * GIB, evaluate_rule=False,
                                 mode="baseline")
    assert raw.mode == "raw" and base.mode == "baseline"
    assert {r.instance: r.verdict for r in raw.rows} == {r.instance: r.verdict for r in base.rows} == {
        k: v for k, v in truth.items() if k.startswith("gw-00")}
    code = cli_main(["fleet", "--prometheus-url", url, "--query", q, "--since", "2025-11-24T16:00:00Z",
                     "--until", "2025-11-25T15:59:00Z", "--step", "60s", "--mode", "baseline", "--no-rule"])
    out = capsys.readouterr().out
    assert code == 0 and "[mode: baseline]" in out and "note: mode: baseline (min_over_time(" in out
