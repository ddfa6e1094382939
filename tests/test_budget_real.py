"""The request budget against the real ZeptoClaw gateway, which crashes at its 101st authenticated request in
60 s: a sampler asking /metrics every second, ``zcnb health`` every 2 s and ``zcnb preflight`` every 10 s, all
at once for 70 s, as separate ``zcnb`` processes. The sampler stops scraping this gateway after its first reply
(it exports no memory metrics), so a notebook-style loop asks /metrics every second besides (``MetricsClient``,
the API a notebook cell uses), waiting at most 1 s for a slot and skipping the scrape otherwise. The gateway must be alive afterwards, the ledger must hold at
most the budget in every 60 s window, and the gateway's own request counter must agree with the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from zcnb.collect.budget import RequestBudget, runtime_dir
from zcnb.collect.metrics import MetricsClient, parse_metrics
from zcnb.config import load_settings

REPO = Path(__file__).resolve().parents[1]
RUN_S = 70.0

_POLLER = """
import sys, time
from zcnb.collect.metrics import MetricsClient
from zcnb.config import gateway_token
from zcnb.exceptions import RequestBudgetExhausted
client = MetricsClient(sys.argv[1], token=gateway_token(), caller="notebook", budget_wait_s=1.0)
sent = skipped = 0
until = time.monotonic() + float(sys.argv[2])
while time.monotonic() < until:
    t0 = time.monotonic()
    try:
        client.fetch()
        sent += 1
    except RequestBudgetExhausted:
        skipped += 1
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
print(f"sent {sent} skipped {skipped}")
"""


def _loop(argv: list[str], every_s: float, until: float, env: dict[str, str], out: list[tuple[int, str]]) -> None:
    """Run ``zcnb ARGV`` every ``every_s`` seconds (or right after the previous one, when that took longer)."""
    while time.monotonic() < until:
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "zcnb", *argv], capture_output=True, text=True, env=env,
                           cwd=str(REPO), timeout=120, check=False)
        out.append((p.returncode, p.stdout + p.stderr))
        time.sleep(max(0.0, every_s - (time.monotonic() - t0)))


def _max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.slow
def test_sampler_health_and_preflight_together_never_crash_the_real_gateway(real_gateway: Any, tmp_path: Path) -> None:
    gw = real_gateway()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GATEWAY_AUTH_TOKEN": gw.token.reveal()}
    env.pop("ZCNB_REQUEST_BUDGET", None)  # the default budget, 60 per 60 s
    port = str(gw.port)
    until = time.monotonic() + RUN_S
    samples = tmp_path / "samples.csv"
    sampler = subprocess.Popen(
        [sys.executable, "-m", "zcnb", "sample", "--pid", str(gw.pid), "--port", port, "--sources", "psutil,metrics",
         "--interval", "1", "--metrics-interval", "1", "--duration", str(RUN_S), "--out", str(samples),
         "--no-progress", "--no-verdict"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=str(REPO))
    poller = subprocess.Popen([sys.executable, "-c", _POLLER, gw.url, str(RUN_S)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env, cwd=str(REPO))
    health: list[tuple[int, str]] = []
    pre: list[tuple[int, str]] = []
    loops = [threading.Thread(target=_loop, args=(["health", "--port", port, "--pid", str(gw.pid), "--timeout", "5"],
                                                  2.0, until, env, health)),
             threading.Thread(target=_loop, args=(["preflight", "--port", port, "--pid", str(gw.pid), "--timeout", "3",
                                                   "--budget-wait", "5"], 10.0, until, env, pre))]
    for t in loops:
        t.start()
    sampler_out, _ = sampler.communicate(timeout=RUN_S + 120)
    poller_out, _ = poller.communicate(timeout=120)
    for t in loops:
        t.join(timeout=180)

    # alive, and never past its limit: no crash, no rate-limit line in its log
    assert gw.proc.poll() is None, gw.log_path.read_text(errors="replace")[-2000:].replace(gw.token.reveal(), "***")
    log = gw.log_path.read_text(errors="replace")
    assert "panic" not in log and "RateLimitExceeded" not in log
    assert sampler.returncode == 0, sampler_out

    settings = load_settings()
    ledger = RequestBudget("127.0.0.1", gw.port, folder=runtime_dir(settings))
    hist = ledger.history()
    token_times = [e.at for e in hist if e.kind == "T"]
    assert _max_in_window(token_times, 60.0) <= 60
    assert [e for e in hist if e.kind == "U"] == []  # with a token, nothing token-less was sent
    callers = {e.caller for e in hist}
    assert {"sample", "health", "preflight", "notebook"} <= callers
    # every request the gateway counted went through the ledger: its counter equals the ledger's count
    reply = MetricsClient(gw.url, token=gw.token, caller="test").fetch()
    counted = parse_metrics(reply.text).get("zeptoclaw_requests_total")
    sent = len([e for e in ledger.history() if e.kind == "T"])
    assert counted is not None and sent - 2 <= counted <= sent  # the final fetch may count itself (or its retry)

    # demand was ~130 requests in 70 s: the budget made callers wait or skip, and they said so
    assert poller.returncode == 0, poller_out
    sent_nb, skipped_nb = (int(x) for x in poller_out.split()[1::2])
    assert sent_nb >= 10 and skipped_nb >= 5, poller_out
    print(f"ledger: {sent} requests with a token, at most {_max_in_window(token_times, 60.0)} in any 60 s; gateway "
          f"counted {counted:g}; notebook loop sent {sent_nb}, skipped {skipped_nb}; health runs {len(health)} "
          f"({sum(rc == 0 for rc, _ in health)} healthy); preflight runs {len(pre)}; by caller "
          + ", ".join(f"{c}={sum(e.caller == c for e in hist)}" for c in sorted(callers)))
    assert "metrics: exports" in sampler_out or "no memory metrics" in sampler_out
    assert len(health) >= 10 and sum(rc == 0 for rc, _ in health) >= 5
    assert all(("healthy" in out) or ("throttled" in out) for _, out in health), health
    assert len(pre) >= 5 and all("request budget" in out for _, out in pre)
    assert any("waited" in out or "throttled" in out for _, out in health + pre), health + pre
    assert not any(gw.token.reveal() in out for _, out in health + pre) and gw.token.reveal() not in sampler_out
    assert not any("rate_limited" in out or "closed the connection without a reply" in out for _, out in health + pre)
