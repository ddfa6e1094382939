"""Tests of zcnb.fleet (fleet view, alert rule, plot) and the ``zcnb fleet`` command.

Offline tests replay ``tests/data/fleet/query_range.json.gz``: a real Prometheus reply
recorded by ``tests/data/fleet/record.py`` (six simulated gateways, 180 s at 1 s). The
replay goes through httpx.MockTransport only because the recording is static; the
slow tests at the end run a real Prometheus scraping real simulated gateways.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prom_helpers import prometheus_exe, running_prometheus

from zcnb.cli import main as cli_main
from zcnb.collect.prometheus import query_range, samples_frame
from zcnb.exceptions import AnalysisError, ConfigError, DataError
from zcnb.fleet import (
    FleetView,
    alert_rule,
    fleet_view,
    read_fleet_csv,
    write_fleet_csv,
)
from zcnb.viz.fleet import plot_fleet

DATA = Path(__file__).parent / "data" / "fleet"
GIB = 2**30


@pytest.fixture(scope="module")
def recorded() -> tuple[pd.DataFrame, dict[str, str]]:
    with gzip.open(DATA / "query_range.json.gz", "rt", encoding="utf-8") as fh:
        body = fh.read()
    result = json.loads(body)["data"]["result"]
    t0 = min(float(s["values"][0][0]) for s in result)
    t1 = max(float(s["values"][-1][0]) for s in result)
    df = query_range("http://recorded.invalid:9090", "x", start=t0, end=t1, step=1,
                     transport=httpx.MockTransport(lambda req: httpx.Response(200, text=body)))
    expected = json.loads((DATA / "expected.json").read_text())["expected_verdict"]
    return df, expected


# --- rule -----------------------------------------------------------------------------------------

def test_alert_rule_selector_and_expression() -> None:
    r = alert_rule('process_resident_memory_bytes{job="zeptoclaw-gateway"}', limit_bytes=2 * GIB)
    assert r.expr == 'predict_linear(process_resident_memory_bytes{job="zeptoclaw-gateway"}[1h], 4*3600) > 2147483648'
    assert "alert: ZeptoclawGatewayMemoryLeak" in r.yaml() and r.expr in r.yaml()
    r2 = alert_rule("max by (instance) (process_resident_memory_bytes)", limit_bytes=GIB)
    assert r2.expr == "predict_linear((max by (instance) (process_resident_memory_bytes))[1h:1m], 4*3600) > 1073741824"
    assert alert_rule("up").expr.endswith("> LIMIT_BYTES")


# --- fleet view on the recorded fleet -------------------------------------------------------------------

def test_recorded_fleet_ranks_leaking_first(recorded: tuple[pd.DataFrame, dict[str, str]]) -> None:
    df, expected = recorded
    view = fleet_view(df, limit_bytes=GIB)
    verdicts = {r.instance: r.verdict for r in view.rows}
    assert verdicts == expected
    n_leak = sum(v == "leak" for v in expected.values())
    assert [r.verdict for r in view.rows[:n_leak]] == ["leak"] * n_leak
    assert set(view.leaking) == {k for k, v in expected.items() if v == "leak"}
    # Restart order = soonest to the limit first, and every leaking instance has a time to limit.
    ttl = [next(r.time_to_limit_s for r in view.rows if r.instance == k) for k in view.restart_order]
    known = [t for t in ttl if t is not None]
    assert len(known) == len(ttl) and all(t > 0 for t in known) and known == sorted(known)
    assert [r.restart_rank for r in view.rows[:n_leak]] == list(range(1, n_leak + 1))
    assert all(r.restart_rank is None for r in view.rows[n_leak:])
    assert all(r.rule_flagged is None for r in view.rows) and view.comparison() == {}
    # Growth of the linear gateway (256 KiB/s = 900 MiB/h) is measured, not just flagged.
    lin = next(r for r in view.rows if r.instance == "gw-linear")
    assert lin.growth_bytes_per_hour == pytest.approx(900 * 2**20, rel=0.25)


def test_without_limit_ranks_by_growth(recorded: tuple[pd.DataFrame, dict[str, str]]) -> None:
    view = fleet_view(recorded[0])
    growth = [r.growth_bytes_per_hour for r in view.rows if r.verdict == "leak"]
    known = [g for g in growth if g is not None]
    assert known and len(known) == len(growth) and known == sorted(known, reverse=True)
    assert all(r.time_to_limit_s is None for r in view.rows)
    assert any("no limit given" in n for n in view.notes) and view.rule.expr.endswith("LIMIT_BYTES")


def test_rule_comparison_and_outputs(recorded: tuple[pd.DataFrame, dict[str, str]], tmp_path: Path) -> None:
    view = fleet_view(recorded[0], limit_bytes=GIB, rule_flagged=["gw-linear", "gw-warmup", "other:1"])
    cmp_ = view.comparison()
    assert cmp_["both"] == ["gw-linear"] and cmp_["rule_only"] == ["gw-warmup"]
    assert "gw-per-scrape" in cmp_["zcnb_only"]
    assert any("other:1" in n for n in view.notes)
    html = view._repr_html_()
    assert "gw-sawtooth-flat" in html and "predict_linear(" in html and "rule fires" in html
    from zcnb.files import read_json, write_json

    write_json(tmp_path / "fleet.json", view)
    back = read_json(tmp_path / "fleet.json")
    assert [r["instance"] for r in back["rows"]] == [r.instance for r in view.rows]
    assert back["rule"]["expr"] == view.rule.expr and set(back["assessments"]) == set(view.assessments)
    frame = view.to_frame()
    assert list(frame["instance"]) == [r.instance for r in view.rows]


def test_plot_fleet(recorded: tuple[pd.DataFrame, dict[str, str]], tmp_path: Path) -> None:
    view = fleet_view(recorded[0], limit_bytes=GIB)
    fig = plot_fleet(view, max_panels=4, ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4
    assert visible[0].get_title().startswith(view.rows[0].instance)
    assert "top 4 of 6" in fig.get_suptitle()
    fig.savefig(tmp_path / "fleet.png")
    assert (tmp_path / "fleet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError):
        plot_fleet(fleet_view(recorded[0], keep_data=False))


# --- edge cases ------------------------------------------------------------------------------------------

def _linear(instance: str, n: int, slope_per_s: float, start: float = 1.7e9, step: float = 15) -> pd.DataFrame:
    t = start + np.arange(n) * step
    rng = np.random.default_rng(len(instance))
    return samples_frame([instance] * n, t, 50e6 + slope_per_s * (t - start) + rng.normal(0, 1e4, n))


def test_without_limit_never_reads_this_host_and_says_no_limit_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote instances: no projection against this machine's free memory (psutil is made to fail to prove it)."""
    import psutil

    def no_host(*_: object) -> object:
        raise AssertionError("this host's memory must not be read for remote instances")

    monkeypatch.setattr(psutil, "virtual_memory", no_host)
    df = pd.concat([_linear("fast", 400, 20_000.0), _linear("flat", 400, 0.0)], ignore_index=True)
    view = fleet_view(df)
    rows = {r.instance: r for r in view.rows}
    assert rows["fast"].verdict == "leak" and rows["flat"].verdict == "no_leak"
    assert all(r.time_to_limit_s is None for r in view.rows)
    assert rows["fast"].severity not in ("none", "low")  # 72 MB/h from 50 MB: doubles within the hour
    a = view.assessments["fast"]
    assert a.limit_bytes is None and a.time_to_limit_s is None and "no memory limit is known" in a.advice
    assert view.to_dict()["assessments"]["fast"]["limit_bytes"] is None
    limited = fleet_view(df, limit_bytes=GIB)
    assert next(r for r in limited.rows if r.instance == "fast").time_to_limit_s is not None


def test_short_instance_is_inconclusive_not_fatal() -> None:
    df = pd.concat([_linear("long", 400, 500.0), _linear("short", 3, 500.0)], ignore_index=True)
    view = fleet_view(df, limit_bytes=GIB)
    rows = {r.instance: r for r in view.rows}
    assert rows["long"].verdict == "leak" and rows["short"].verdict == "inconclusive"
    assert [r.instance for r in view.rows] == ["long", "short"]


def test_parallel_equals_serial() -> None:
    df = pd.concat([_linear(f"gw{i}", 300, 50.0 * (i % 3)) for i in range(6)], ignore_index=True)
    serial = fleet_view(df, limit_bytes=GIB, workers=1)
    parallel = fleet_view(df, limit_bytes=GIB, workers=2)
    assert serial.rows == parallel.rows and serial.restart_order == parallel.restart_order


def test_bad_input_errors() -> None:
    df = _linear("a", 100, 1.0)
    with pytest.raises(ConfigError, match="no 'pod' column"):
        fleet_view(df, by="pod")
    with pytest.raises(ConfigError):
        fleet_view(df, limit_bytes=-5)
    with pytest.raises(AnalysisError, match="not in the samples"):
        fleet_view(df, column="nope")
    with pytest.raises(AnalysisError):
        fleet_view(df.iloc[:0])
    with pytest.raises(ConfigError):
        fleet_view([1, 2, 3])


def test_fleet_csv_roundtrip(tmp_path: Path) -> None:
    df = pd.concat([_linear("a:1", 50, 10.0), _linear("b:1", 40, 0.0)], ignore_index=True)
    path = write_fleet_csv(df, tmp_path / "f.csv.gz")
    back = read_fleet_csv(path)
    pd.testing.assert_frame_equal(back, df)
    (tmp_path / "bad.csv").write_text("host,when,mem\nx,1,2\n")
    with pytest.raises(DataError, match="lacks columns"):
        read_fleet_csv(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="does not exist"):
        read_fleet_csv(tmp_path / "missing.csv")


def test_cli_bad_url_is_clear(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["fleet", "--prometheus-url", "file:///tmp/x", "--since", "1h"]) == 2
    err = capsys.readouterr().err
    assert "only http and https" in err and "Traceback" not in err
    assert cli_main(["fleet", "--prometheus-url", "http://127.0.0.1:9", "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err


# --- a real Prometheus scraping simulated gateways --------------------------------------------------------

LIVE: dict[str, tuple[dict[str, Any], str]] = {  # instance -> (SimulatedGateway kwargs, expected verdict)
    "gw-linear": ({"leak": "linear", "leak_rate": 512 * 1024}, "leak"),
    "gw-per-request": ({"leak": "per_request", "leak_kind": "agent", "leak_bytes": 768 * 1024}, "leak"),
    "gw-none": ({"leak": "none"}, "no_leak"),
    "gw-sawtooth-flat": ({"leak": "sawtooth-flat", "leak_period": 8.0}, "no_leak"),
}


@pytest.fixture(scope="module")
def live_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """Four simulated gateways (runbook profile) scraped every 1 s by a real Prometheus; ~75 s of data."""
    prometheus_exe()  # skip early, before starting gateways, where Prometheus is not installed
    from zcnb.demo import SimulatedGateway, TrafficGenerator

    tmp = tmp_path_factory.mktemp("live-fleet")
    gateways = []
    traffic = None
    try:
        targets = ""
        for name, (kwargs, _verdict) in LIVE.items():
            gw = SimulatedGateway(profile="runbook", **kwargs)
            gw.start()
            gateways.append(gw)
            targets += f"      - targets: ['127.0.0.1:{gw.port}']\n        labels: {{gateway: '{name}'}}\n"
            if kwargs.get("leak_kind") == "agent":  # the per-request leak needs agent calls: ~0.7/s
                traffic = TrafficGenerator(gw.url, token=gw.token, skills={"git_workflow": 0.7}, budget_per_min=60)
                traffic.start()
        config = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n"
                  "  - job_name: zeptoclaw-gateway\n    relabel_configs:\n      - source_labels: [gateway]\n"
                  "        target_label: instance\n    static_configs:\n" + targets)
        with running_prometheus(tmp, lambda _port: config) as url:
            start = time.time()
            time.sleep(75)  # the analysis needs >= 60 s of history per instance
            yield url, start
    finally:
        if traffic is not None:
            traffic.stop()
        for gw in gateways:
            gw.stop()


@pytest.mark.slow
def test_live_fleet_ranks_leaking_first(live_fleet: tuple[str, float]) -> None:
    from zcnb.fleet import fleet_from_prometheus

    url, start = live_fleet
    view = fleet_from_prometheus(url, 'process_resident_memory_bytes{job="zeptoclaw-gateway"}', start=start,
                                 end=time.time(), step="1s", limit_bytes=GIB)
    assert isinstance(view, FleetView)
    verdicts = {r.instance: r.verdict for r in view.rows}
    assert verdicts == {k: v for k, (_kw, v) in LIVE.items()}, view.to_frame().to_string()
    assert {r.verdict for r in view.rows[:2]} == {"leak"} and set(view.restart_order) == {"gw-linear", "gw-per-request"}
    assert view.rule_evaluated  # the rule went through the real server's instant query API
    # Growth of >= 1.8 GiB/h crosses 1 GiB within 4 h, so the predict_linear rule fires for both leaks;
    # the flat gateway stays far below the limit.
    flagged = {r.instance for r in view.rows if r.rule_flagged}
    assert {"gw-linear", "gw-per-request"} <= flagged and "gw-none" not in flagged
    assert all(r.n_samples >= 60 for r in view.rows)


@pytest.mark.slow
def test_live_cli_writes_json_and_png(live_fleet: tuple[str, float], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    url, start = live_fleet
    code = cli_main(["fleet", "--prometheus-url", url, "--since", f"{time.time() - start:.0f}s", "--step", "2s",
                     "--limit", "1GiB", "--json", str(tmp_path / "f.json"), "--png", str(tmp_path / "f.png"),
                     "--fail-on-leak"])
    out = capsys.readouterr().out
    assert code == 1  # --fail-on-leak with two leaking gateways
    assert "gw-linear" in out and "predict_linear(" in out
    data = json.loads((tmp_path / "f.json").read_text())
    assert {r["instance"] for r in data["rows"] if r["verdict"] == "leak"} == {"gw-linear", "gw-per-request"}
    assert (tmp_path / "f.png").stat().st_mode & 0o777 == 0o600
    assert math.isfinite(data["limit_bytes"])
