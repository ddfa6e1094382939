"""``zcnb report -p live=true`` against the real ZeptoClaw binary (supervisor backend), under token-less traffic
with 20 extra headers per request: stage 01 samples the running process live, stage 02 plans its restart through
the supervisor file, the report follows. Checked against /proc in the same test: the verdict is a leak, the bytes
retained per token-less request (zcnb's growth interval over the probes sent while it sampled) contain the
per-request growth measured on a fresh gateway, the gateway never crashed, and the report names the real process.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_realgw_incident import _probe, _rss, per_request_growth

from zcnb.config import Secret

pytestmark = pytest.mark.slow
UNIT = "zeptoclaw-gateway.service"
TOKEN_ENV = "ZCNB_TEST_REALGW_LIVE_TOKEN"
HEADERS = 20


def test_report_live_on_the_real_binary(real_gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.analysis import assess_leak
    from zcnb.cli import main
    from zcnb.collect.samples_csv import read_samples
    from zcnb.demo.realgw import locate_real_gateway, real_gateway_service
    from zcnb.service import ProcessSupervisorBackend

    exe = locate_real_gateway()
    assert exe is not None  # the real_gateway fixture skipped / failed already otherwise
    token = Secret(secrets.token_hex(16))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    svc = real_gateway_service(UNIT, exe, run_dir=run_dir, token=token, stop_method="clean")
    manager = ProcessSupervisorBackend([svc], run_dir=run_dir)
    manager.start(UNIT)
    pid = manager.pid(UNIT)
    assert pid is not None
    base = svc.health.url.rsplit("/health", 1)[0]
    port = int(base.rsplit(":", 1)[1])
    sup_file = manager.to_file(tmp_path / "supervisor.json")
    monkeypatch.setenv(TOKEN_ENV, token.reveal())

    stop = threading.Event()
    sent: list[tuple[float, int]] = []  # (wall time, VmRSS from /proc right after) of every token-less probe

    def probes() -> None:
        while not stop.is_set():
            _probe(port, HEADERS)
            sent.append((time.time(), _rss(pid)))
            time.sleep(0.2)

    traffic = threading.Thread(target=probes, daemon=True)
    incident = tmp_path / "incident"
    try:
        traffic.start()
        rc = main(["report", "--incident-dir", str(incident), "--stages", "01,02", "--no-progress",
                   "-p", "live=true", "-p", f"token_env={TOKEN_ENV}",
                   "-p", f"01.url={base}", "-p", f"01.pid={pid}", "-p", "01.sources=psutil",
                   "-p", "01.interval_s=1", "-p", "01.duration_s=60",
                   "-p", f"02.supervisor_file={sup_file}", "-p", "02.backend=supervisor"])
        stop.set()
        traffic.join(timeout=30)
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "verdict: leak" in out, out
        # crash-free: the same process still runs and its log has no panic
        assert manager.pid(UNIT) == pid
        log = svc.log_file.read_text(errors="replace")
        assert "panic:" not in log and "RateLimitExceeded" not in log
    finally:
        stop.set()
        manager.close()

    summary = json.loads((incident / "summary.json").read_text())
    assert summary["assessment"]["verdict"] == "leak", summary["assessment"]
    # stage 02 only planned the restart (dry run by default): nothing was executed
    actions = [json.loads(x) for x in (incident / "actions.jsonl").read_text().splitlines()]
    assert actions and all(a["dry_run"] for a in actions if a.get("action") == "restart"), actions

    # the report and the samples header name the real process and say why it was chosen
    samples_text = (incident / "samples.csv").read_text()
    assert f"# process: pid {pid} ({exe})" in samples_text, samples_text[:600]
    html = (incident / "report.html").read_text()
    assert str(pid) in html and "zeptoclaw-gateway" in html

    # bytes per token-less request: zcnb's growth interval over the probes sent while it sampled, against the
    # growth /proc showed the test itself over the same probes of the same process
    df = read_samples(incident / "samples.csv")
    res = assess_leak(df)
    assert res.verdict == "leak" and res.growth_interval is not None, res
    times = df.index if isinstance(df.index, pd.DatetimeIndex) else pd.DatetimeIndex(df["timestamp"])
    first, last = times.min().timestamp(), times.max().timestamp()
    window = [(t, rss) for t, rss in sent if first <= t <= last]
    probes = len(window)
    hours = (last - first) / 3600
    low, high = (g * hours / probes for g in res.growth_interval)
    proc = (window[-1][1] - window[0][1]) / (probes - 1)
    fresh = per_request_growth(real_gateway(name="control"), HEADERS, n=800)  # a fresh gateway, for the record
    print(f"\nzcnb report -p live=true on the real binary: {probes} probes in {last - first:.0f} s; per token-less "
          f"request zcnb {low:.0f}-{high:.0f} B, /proc on the same process {proc:.0f} B (a fresh gateway: {fresh:.0f} B)")
    assert low <= proc <= high

    for path in incident.rglob("*"):
        if path.is_file():
            assert token.reveal().encode() not in path.read_bytes(), path
