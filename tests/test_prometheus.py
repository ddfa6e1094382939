"""Tests of zcnb.collect.prometheus: the Prometheus HTTP API source.

Error paths (PromQL error bodies, 5xx then success, 401, slow replies) use a tiny
loopback HTTP server that mimics the API, because a real Prometheus cannot be made to
fail on demand. Chunking, merging and real error bodies are also checked against a
real ``prometheus`` server (Debian package) scraping itself on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prom_helpers import free_port, running_prometheus

from zcnb.collect.prometheus import (
    SAMPLE_COLUMNS,
    PrometheusAuth,
    _chunks,
    check_url,
    query_instant,
    query_range,
)
from zcnb.exceptions import ConfigError, PrometheusError
from zcnb.units import parse_duration

Reply = tuple[int, dict[str, Any] | str]


class FakeApi:
    """A loopback server mimicking /api/v1/query_range; ``script`` replies in order, then ``default``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Reply] = []
        self.default: Callable[[dict[str, str]], Reply] = lambda q: (200, _matrix([]))
        self.delay_s = 0.0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                api.requests.append({"path": parts.path, "params": params, "headers": dict(self.headers)})
                if api.delay_s:
                    time.sleep(api.delay_s)
                status, body = api.script.pop(0) if api.script else api.default(params)
                raw = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _matrix(series: list[tuple[dict[str, str], list[list[Any]]]]) -> dict[str, Any]:
    return {"status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": m, "values": v} for m, v in series]}}


def _grid_reply(labels: list[dict[str, str]]) -> Callable[[dict[str, str]], Reply]:
    """Answer any range query with value = 1000*series + t on the requested grid (like Prometheus)."""
    def reply(q: dict[str, str]) -> Reply:
        if "start" not in q:  # an instant query (fleet's count(...) before choosing raw or baseline mode)
            result = ([{"metric": {}, "value": [float(q.get("time", time.time())), str(len(labels))]}]
                      if q["query"].startswith("count(") else [])
            return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
        s, e, step = float(q["start"]), float(q["end"]), float(q["step"])
        if (e - s) / step > 11000:
            return 400, {"status": "error", "errorType": "bad_data",
                         "error": "exceeded maximum resolution of 11,000 points per timeseries"}
        ts = np.arange(s, e + step / 2, step)
        return 200, _matrix([(lab, [[float(t), str(1000 * i + t)] for t in ts]) for i, lab in enumerate(labels)])
    return reply


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi()
    yield api
    api.close()


# --- URL, duration and auth checks ------------------------------------------------------------

@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1:9090", "127.0.0.1:9090", "http://", "http://h:99999"])
def test_refuses_bad_or_non_http_urls(url: str) -> None:
    with pytest.raises(PrometheusError):
        check_url(url)


def test_refuses_credentials_in_url_without_echoing_them() -> None:
    with pytest.raises(PrometheusError) as info:
        query_range("http://admin:hunter2@127.0.0.1:9090", "up", start=0, end=60, step=15)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value.context)


def test_check_url_strips_api_path() -> None:
    assert check_url("http://127.0.0.1:9090/prom/api/v1/query_range") == "http://127.0.0.1:9090/prom"


@pytest.mark.parametrize("text,seconds", [("15s", 15), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800), ("90", 90)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "-5s", "0"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_auth_needs_env_and_one_kind() -> None:
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_ZCNB"):
        PrometheusAuth(bearer_token_env="NO_SUCH_VAR_ZCNB").headers(env={})
    with pytest.raises(ConfigError):
        PrometheusAuth(bearer_token_env="A", basic_user_env="B", basic_password_env="C")
    with pytest.raises(ConfigError):
        PrometheusAuth(basic_user_env="B")


# --- chunking -------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 10**6), n=st.integers(0, 5000), step=st.integers(1, 120), maxp=st.integers(2, 700))
def test_chunks_cover_grid_exactly_once(start: int, n: int, step: int, maxp: int) -> None:
    end = start + n * step
    chunks = _chunks(float(start), float(end), float(step), maxp)
    points = [p for s, e in chunks for p in np.arange(s, e + step / 2, step)]
    assert points == [float(start + k * step) for k in range(n + 1)]
    assert all((e - s) / step < maxp for s, e in chunks)


def test_query_range_chunks_and_merges(fake: FakeApi) -> None:
    labels = [{"__name__": "process_resident_memory_bytes", "instance": f"gw{i}:18789", "job": "zc"} for i in range(3)]
    fake.default = _grid_reply(labels)
    df = query_range(fake.url, "process_resident_memory_bytes", start=1_700_000_000, end=1_700_000_000 + 30_000 * 15,
                     step="15s")
    # 30,001 points per series need 3 requests under the 11,000 limit.
    assert len(fake.requests) == 3
    for r in fake.requests:
        p = r["params"]
        assert (float(p["end"]) - float(p["start"])) / float(p["step"]) < 11000
    assert len(df) == 3 * 30_001
    for i, (inst, sub) in enumerate(df.groupby("instance")):
        assert inst == f"gw{i}:18789"
        assert sub["timestamp"].is_monotonic_increasing and not sub["timestamp"].duplicated().any()
        t = sub["timestamp"].astype("int64").to_numpy() / 1e9
        np.testing.assert_allclose(sub["rss_bytes"].to_numpy(), 1000 * i + t)


def test_samples_layout(fake: FakeApi) -> None:
    fake.script = [(200, _matrix([({"instance": "b"}, [[100, "5"], [115, "NaN"]]),
                                  ({"instance": "a"}, [[100, "7"]])]))]
    df = query_range(fake.url, "x", start=100, end=115, step=15, value_column="metrics_rss_bytes")
    assert list(df.columns) == [*SAMPLE_COLUMNS, "instance"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]" and str(df["pid"].dtype) == "Int64"
    assert df["pid"].isna().all() and (df["source"] == "prometheus").all()
    assert (df["event"] == "").all() and (df["note"] == "").all()
    assert df["rss_bytes"].isna().all()
    assert list(df["instance"]) == ["a", "b", "b"]
    assert df["metrics_rss_bytes"].iloc[0] == 7 and np.isnan(df["metrics_rss_bytes"].iloc[2])
    assert df["timestamp"].iloc[0] == pd.Timestamp(100, unit="s", tz="UTC")


def test_series_keys_without_instance_or_clashing(fake: FakeApi) -> None:
    fake.script = [(200, _matrix([({"instance": "h:1", "job": "a"}, [[100, "1"]]),
                                  ({"instance": "h:1", "job": "b"}, [[100, "2"]]),
                                  ({"pod": "p1"}, [[100, "3"]])]))]
    df = query_range(fake.url, "x", start=100, end=100, step=15)
    assert sorted(df["instance"]) == ['h:1{job="a"}', 'h:1{job="b"}', '{pod="p1"}']
    fake.script = [(200, _matrix([({"pod": "p1"}, [[100, "3"]])]))]
    df = query_range(fake.url, "x", start=100, end=100, step=15, instance_label="pod")
    assert list(df["instance"]) == ["p1"]


def test_empty_result_has_layout(fake: FakeApi) -> None:
    df = query_range(fake.url, "nothing", start=0, end=60, step=15)
    assert df.empty and list(df.columns) == [*SAMPLE_COLUMNS, "instance"]


# --- errors, retries, auth ------------------------------------------------------------------------

def test_promql_error_body_is_clear_and_not_retried(fake: FakeApi) -> None:
    fake.script = [(400, {"status": "error", "errorType": "bad_data", "error": "1:10: parse error: unexpected end"})]
    with pytest.raises(PrometheusError) as info:
        query_range(fake.url, "rate(x[", start=0, end=60, step=15, backoff_s=0.01)
    assert "bad_data" in str(info.value) and "parse error" in str(info.value)
    assert info.value.context["error_type"] == "bad_data"
    assert len(fake.requests) == 1


def test_retries_5xx_then_succeeds(fake: FakeApi) -> None:
    ok = _matrix([({"instance": "a"}, [[0, "1"], [15, "2"]])])
    fake.script = [(503, "overloaded"), (502, {"status": "error", "errorType": "unavailable", "error": "x"}), (200, ok)]
    df = query_range(fake.url, "x", start=0, end=15, step=15, retries=3, backoff_s=0.01)
    assert len(fake.requests) == 3 and list(df["rss_bytes"]) == [1.0, 2.0]


def test_gives_up_after_retries(fake: FakeApi) -> None:
    fake.default = lambda q: (500, "boom")
    with pytest.raises(PrometheusError, match="3 attempt"):
        query_range(fake.url, "x", start=0, end=15, step=15, retries=2, backoff_s=0.01)
    assert len(fake.requests) == 3


def test_non_prometheus_reply(fake: FakeApi) -> None:
    fake.script = [(200, "<html>login</html>")]
    with pytest.raises(PrometheusError, match="not a Prometheus API response"):
        query_range(fake.url, "x", start=0, end=15, step=15)


def test_bearer_token_sent_and_never_shown(fake: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCNB_TEST_PROM_TOKEN", "s3cr3t-token-value")
    fake.script = [(401, "Unauthorized")]
    auth = PrometheusAuth(bearer_token_env="ZCNB_TEST_PROM_TOKEN")
    with pytest.raises(PrometheusError, match="authentication failed") as info:
        query_range(fake.url, "x", start=0, end=15, step=15, auth=auth, backoff_s=0.01)
    assert fake.requests[0]["headers"]["Authorization"] == "Bearer s3cr3t-token-value"
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in repr(info.value.context)
    assert "s3cr3t" not in repr(auth) and "s3cr3t" not in json.dumps(auth.to_dict())
    assert len(fake.requests) == 1  # 401 is not retried


def test_basic_auth_header(fake: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCNB_TEST_U", "ops")
    monkeypatch.setenv("ZCNB_TEST_P", "pw:1")
    fake.script = [(200, _matrix([({"instance": "a"}, [[0, "1"]])]))]
    query_range(fake.url, "x", start=0, end=0, step=15,
                auth=PrometheusAuth(basic_user_env="ZCNB_TEST_U", basic_password_env="ZCNB_TEST_P"))
    assert fake.requests[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"ops:pw:1").decode()


def test_unreachable_server() -> None:
    port = free_port()
    with pytest.raises(PrometheusError, match="cannot connect"):
        query_range(f"http://127.0.0.1:{port}", "up", start=0, end=15, step=15, retries=1, backoff_s=0.01)


def test_timeout(fake: FakeApi) -> None:
    fake.delay_s = 1.0
    t0 = time.monotonic()
    with pytest.raises(PrometheusError, match="within the 0.2 s deadline"):
        query_range(fake.url, "x", start=0, end=15, step=15, timeout_s=0.2, retries=3, backoff_s=0.01)
    assert time.monotonic() - t0 < 0.8  # a total deadline: retries do not add up


def test_query_instant_vector(fake: FakeApi) -> None:
    fake.script = [(200, {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"instance": "a"}, "value": [100, "3.5"]}]}})]
    assert query_instant(fake.url, "x > 1", at=100) == {"a": 3.5}
    assert fake.requests[0]["path"] == "/api/v1/query" and fake.requests[0]["params"]["time"] == "100"


def test_injected_transport_is_used() -> None:
    """httpx MockTransport: checks that the transport hook works (no server needed for this one)."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_matrix([({"instance": "t"}, [[0, "9"]])]))
    df = query_range("http://prom.invalid:9090", "x", start=0, end=0, step=1, transport=httpx.MockTransport(handler))
    assert list(df["rss_bytes"]) == [9.0]


# --- against a real Prometheus server ---------------------------------------------------------------

@pytest.fixture(scope="module")
def real_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def self_scrape(port: int) -> str:
        return ("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{port}']\n")

    with running_prometheus(tmp_path_factory.mktemp("prom"), self_scrape) as url:
        # Wait for enough scrapes (1 s interval) to have several points.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = time.time()
            df = query_range(url, "process_resident_memory_bytes", start=now - 60, end=now, step=1)
            if len(df) >= 6:
                break
            time.sleep(0.5)
        yield url


@pytest.mark.slow
def test_real_server_chunked_equals_single(real_prometheus: str) -> None:
    end = time.time()
    start = end - 30
    whole = query_range(real_prometheus, "process_resident_memory_bytes", start=start, end=end, step=1)
    chunked = query_range(real_prometheus, "process_resident_memory_bytes", start=start, end=end, step=1,
                          max_points_per_series=4)
    assert len(whole) >= 5 and whole["instance"].nunique() == 1
    pd.testing.assert_frame_equal(whole, chunked)


@pytest.mark.slow
def test_real_server_errors(real_prometheus: str) -> None:
    now = time.time()
    with pytest.raises(PrometheusError, match="bad_data") as info:
        query_range(real_prometheus, "rate(process_resident_memory_bytes[", start=now - 60, end=now, step=1)
    assert info.value.context["error_type"] == "bad_data"
    # The server's own limit is real, and the default chunking stays under it.
    with pytest.raises(PrometheusError, match="11,000"):
        query_range(real_prometheus, "up", start=now - 20_000, end=now, step=1, max_points_per_series=20_001)
    df = query_range(real_prometheus, "up", start=now - 20_000, end=now, step=1)
    assert (df["rss_bytes"] == 1).all() and len(df) >= 5


def test_notebook_fleet_mode_empty_query_is_the_cli_default(fake: FakeApi, tmp_path: Path) -> None:
    """Notebook 01's ``promql=""`` asks Prometheus the same job-scoped query as ``zcnb fleet`` (not every job's RSS)."""
    from zcnb.cli import main
    from zcnb.config import DEFAULT_FLEET_QUERY
    from zcnb.incident import open_incident
    from zcnb.stages import confirm

    fake.default = _grid_reply([{"instance": "gw-a:18789", "job": "zeptoclaw-gateway"}])
    inc = open_incident(tmp_path / "inc")
    view = confirm.fleet(inc, prometheus_url=fake.url, promql="", since="10m", step="15s")
    ranged = [r for r in fake.requests if r["path"].endswith("/query_range")]
    assert ranged and {r["params"]["query"] for r in ranged} == {DEFAULT_FLEET_QUERY}
    assert '{job="zeptoclaw-gateway"}' in DEFAULT_FLEET_QUERY and len(view.rows) == 1
    fake.requests.clear()
    main(["fleet", "--prometheus-url", fake.url, "--since", "10m", "--step", "15s"])  # the CLI with no --query
    ranged = [r for r in fake.requests if r["path"].endswith("/query_range")]
    assert ranged and {r["params"]["query"] for r in ranged} == {DEFAULT_FLEET_QUERY}
    assert {r["params"]["query"] for r in fake.requests if r not in ranged} <= {f"count({DEFAULT_FLEET_QUERY})"}
    fake.requests.clear()
    confirm.fleet(inc, prometheus_url=fake.url, promql="up", since="10m", step="15s")
    assert {r["params"]["query"] for r in fake.requests if r["path"].endswith("/query_range")} == {"up"}
