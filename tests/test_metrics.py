"""zcnb.collect.metrics against real loopback endpoints (raw-socket server in collection_helpers) and a bad-input corpus."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import pytest
from collection_helpers import GOOD_BODY, REAL_BODY, FakeEndpoint, refused_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcnb.collect.metrics import MetricsClient, fetch_metrics, parse_metrics
from zcnb.config import Secret
from zcnb.exceptions import (
    ConfigError,
    EndpointAuthError,
    EndpointBodyTooLarge,
    EndpointRateLimited,
    EndpointUnreachable,
    MetricsFormatError,
    ZcnbError,
)

CORPUS = Path(__file__).parent / "data" / "exposition"
TOKEN = "s3cret-token-value-0123456789"


def test_parse_runbook_body_gives_memory_metrics() -> None:
    ms = parse_metrics(GOOD_BODY)
    assert ms.get("process_resident_memory_bytes") == 52428800.0
    assert ms.memory_metrics() == {"process_resident_memory_bytes": 52428800.0,
                                   "process_virtual_memory_bytes": 104857600.0}
    assert ms.get("zeptoclaw_requests_total") == 7
    assert ms.get("nope") is None
    assert "memory metrics" in ms._repr_markdown_()


def test_real_gateway_body_has_no_memory_metrics() -> None:
    ms = parse_metrics(REAL_BODY)
    assert ms.memory_metrics() == {}
    assert ms.names == ("zeptoclaw_requests_total", "zeptoclaw_uptime_seconds")
    assert "none" in ms._repr_markdown_()


def test_labels_select_series_and_ambiguity_is_none() -> None:
    ms = parse_metrics((CORPUS / "ok_openmetrics.txt").read_text())
    assert ms.format == "openmetrics"
    assert ms.get("http_requests_total", {"path": "/metrics"}) == 5
    assert ms.get("http_requests_total", {"path": "/health", "code": "200"}) == 3
    assert ms.get("http_requests_total") is None  # two labelled series: ambiguous, not a guess
    assert ms.get("http_requests_total", {"path": "/nowhere"}) is None


def test_duplicates_keep_last_and_say_so() -> None:
    ms = parse_metrics((CORPUS / "ok_duplicate_series.prom").read_text())
    assert ms.get("process_resident_memory_bytes") == 200
    assert any("duplicate" in n for n in ms.notes)


def test_nan_and_inf_values_are_kept_as_floats() -> None:
    ms = parse_metrics((CORPUS / "ok_nan_inf.prom").read_text())
    assert math.isnan(ms.get("a") or 0.0) and ms.get("b") == math.inf and ms.get("c") == -math.inf
    assert ms.to_dict()["samples"][0]["value"] is None  # JSON-safe


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_corpus(path: Path) -> None:
    """Files named ok_* parse; bad_* raise MetricsFormatError with a message that says what to check."""
    if path.name.startswith("ok_"):
        parse_metrics(path.read_bytes())
    else:
        with pytest.raises(MetricsFormatError) as err:
            parse_metrics(path.read_bytes())
        assert err.value.hint and "metrics" in str(err.value)
        pickle.loads(pickle.dumps(err.value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.binary(),
                 st.lists(st.sampled_from(["# TYPE a gauge", "# TYPE a counter", "a 1", "a{x=\"1\"} 2", "a NaN",
                                           "a{x=\"} 1", "# EOF", "a_total 3", "# HELP a h", "a 1 123", "{}", "a",
                                           "b{le=\"+Inf\"} 1", "# UNIT a bytes", " ", "a 1e400"]))
                 .map("\n".join)))
def test_parse_never_raises_anything_but_zcnb_errors(data: str | bytes) -> None:
    try:
        ms = parse_metrics(data)
    except ZcnbError as exc:
        assert str(exc)
    else:
        assert isinstance(ms.samples, tuple)


def test_fetch_with_status_line_sends_token_header() -> None:
    with FakeEndpoint(token=TOKEN) as ep:
        reply = fetch_metrics(ep.url, token=Secret(TOKEN))
        assert reply.status == 200 and reply.via == "http" and reply.status_line
        assert parse_metrics(reply.text).get("process_resident_memory_bytes") == 52428800.0
        assert f"x-auth-token: {TOKEN}" in ep.requests[-1].lower()
        assert TOKEN not in repr(reply) and TOKEN not in str(reply.to_dict())


def test_bare_reply_falls_back_to_socket_and_is_remembered() -> None:
    with FakeEndpoint(mode="bare", body=REAL_BODY, token=TOKEN) as ep:
        client = MetricsClient(ep.url, token=Secret(TOKEN))
        first = client.fetch()
        assert first.status is None and first.via == "socket" and "zeptoclaw_uptime_seconds" in first.text
        assert client.bare_replies
        n = len(ep.requests)
        second = client.fetch()
        assert second.via == "socket" and len(ep.requests) == n + 1  # one request per scrape once learnt
        assert TOKEN not in repr(client)


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_401_is_auth_error_without_leaking_token(token: str | None) -> None:
    with FakeEndpoint(token=TOKEN) as ep, pytest.raises(EndpointAuthError) as err:
        fetch_metrics(ep.url, token=Secret(token) if token else None)
    text = str(err.value) + repr(err.value) + str(err.value.context)
    assert "401" in text and "GATEWAY_AUTH_TOKEN" in text
    assert "wrong-token" not in text and TOKEN not in text
    assert ("no X-Auth-Token" in text) == (token is None)


def test_connection_closed_without_reply_is_rate_limited() -> None:
    with FakeEndpoint(mode="close") as ep, pytest.raises(EndpointRateLimited) as err:
        fetch_metrics(ep.url)
    assert err.value.reason == "rate limited" and "100 requests" in str(err.value)


def test_refused_is_unreachable() -> None:
    with pytest.raises(EndpointUnreachable) as err:
        fetch_metrics(refused_url(), timeout_s=2)
    assert err.value.reason == "endpoint down"


def test_stall_longer_than_timeout_is_timeout() -> None:
    with FakeEndpoint(mode="stall", stall_s=10) as ep:
        t0 = time.monotonic()
        with pytest.raises(EndpointUnreachable) as err:
            fetch_metrics(ep.url, timeout_s=0.5)
        assert time.monotonic() - t0 < 5
    assert err.value.reason == "timeout"


def test_fifty_megabyte_body_hits_the_cap() -> None:
    with FakeEndpoint(mode="huge", huge_bytes=50 * 2**20) as ep:
        t0 = time.monotonic()
        with pytest.raises(EndpointBodyTooLarge) as err:
            fetch_metrics(ep.url)
        assert time.monotonic() - t0 < 20
    assert err.value.reason == "body too large" and "8388608" in str(err.value)


def test_garbage_body_fetches_but_does_not_parse() -> None:
    with FakeEndpoint(mode="garbage") as ep:
        reply = fetch_metrics(ep.url)
    with pytest.raises(MetricsFormatError):
        parse_metrics(reply.text, content_type=reply.content_type)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/metrics", "file:///etc/passwd", "127.0.0.1:18789", "http://"])
def test_non_http_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        fetch_metrics(url)


def test_url_gets_metrics_path_appended() -> None:
    assert MetricsClient("http://127.0.0.1:1").url == "http://127.0.0.1:1/metrics"
    assert MetricsClient("http://127.0.0.1:1/metrics").url == "http://127.0.0.1:1/metrics"
