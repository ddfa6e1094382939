"""``zcnb preflight --port`` and its request-budget row, against a real loopback endpoint that counts requests."""

from __future__ import annotations

import json

import pytest
from collection_helpers import FakeEndpoint

from zcnb.cli import main

TOKEN = "preflight-budget-token"


def test_port_option_builds_the_url_and_the_budget_row_counts_the_probes(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ZCNB_REQUEST_BUDGET", "60")  # --request-budget sets it for the process: undone after the test
    with FakeEndpoint(body='{"status":"healthy"}\n', token=TOKEN) as ep:
        main(["preflight", "--port", str(ep.port), "--pattern", "zcnb-no-such-[p]", "--timeout", "2", "--json", "-"])
        n = len(ep.requests)
    data = json.loads(capsys.readouterr().out)
    assert data["url"] == f"http://127.0.0.1:{ep.port}" and n == 2  # /metrics and /health, one request each
    row = next(c for c in data["checks"] if c["name"] == "request budget")
    assert row["status"] == "ok" and f"localhost:{ep.port}: 2 of 60 requests" in row["detail"]
    assert data["request_budget"]["used"] == 2 and data["request_budget"]["callers"] == {"preflight": 2}


def test_a_probe_without_a_slot_is_not_sent_and_the_row_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ZCNB_REQUEST_BUDGET", "60")  # --request-budget sets it for the process: undone after the test
    with FakeEndpoint(body='{"status":"healthy"}\n', token=TOKEN) as ep:
        main(["preflight", "--port", str(ep.port), "--pattern", "zcnb-no-such-[p]", "--timeout", "2",
              "--request-budget", "1", "--budget-wait", "0.2"])
        n = len(ep.requests)
    out = capsys.readouterr().out
    assert n == 1
    health = next(ln for ln in out.splitlines() if ln.startswith("/health"))
    assert "WARN" in health and "not probed: request budget of localhost:" in health and "not sent" in health


def test_request_budget_above_the_gateway_limit_is_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ZCNB_REQUEST_BUDGET", "60")  # --request-budget sets it for the process: undone after the test
    with FakeEndpoint(body='{"status":"healthy"}\n', token=TOKEN) as ep:
        main(["preflight", "--port", str(ep.port), "--pattern", "zcnb-no-such-[p]", "--request-budget", "150"])
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("request budget"))
    assert "WARN" in row and "101 crashes it" in row


@pytest.mark.parametrize("bad", ["0", "70000", "x"])
def test_bad_port_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["preflight", "--port", bad])
    assert e.value.code == 2 and "is not a TCP port (1-65535)" in capsys.readouterr().err


def test_budget_command_shows_the_window_and_who_used_it(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ZCNB_REQUEST_BUDGET", "60")
    with FakeEndpoint(body='{"status":"healthy"}\n', token=TOKEN) as ep:
        main(["health", "--port", str(ep.port), "--timeout", "2"])
        main(["preflight", "--port", str(ep.port), "--pattern", "zcnb-no-such-[p]"])
        n = len(ep.requests)
        capsys.readouterr()
        assert main(["budget", "--port", str(ep.port), "--history", "10"]) == 0
        out = capsys.readouterr().out
        assert len(ep.requests) == n  # showing the budget sends nothing
    assert f"localhost:{ep.port}: 3 of 60 requests" in out and "health 1, preflight 2" in out
    assert out.count(" token  pid ") == 3
    main(["budget", "--port", str(ep.port), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["used"] == 3 and data["callers"] == {"health": 1, "preflight": 2} and data["history"] == []
