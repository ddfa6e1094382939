"""The whole incident on the real ZeptoClaw binary: ``zcnb demo --gateway-binary`` (supervisor backend, token-less
probes with 20 extra headers, restart with the clean stop, every stage notebook), checked against what /proc
says in the same run. Also the bytes per token-less request by header count (/proc), the figures in docs.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
TOKEN = "real-incident-token-3c9e71d2a4"


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS"))


def _probe(port: int, extra: int, accept_encoding: bool = False) -> None:
    head = "Accept-Encoding: identity\r\n" if accept_encoding else ""  # what http.client adds (the demo's probes)
    head += "".join(f"X-Probe-{i}: value-{i:04d}-{'p' * 24}\r\n" for i in range(extra))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
        while s.recv(4096):
            pass


def per_request_growth(gw: Any, extra: int, n: int = 400, accept_encoding: bool = False) -> float:
    """Bytes of RSS per token-less request with ``extra`` headers besides Host (after a warm-up)."""
    for _ in range(50):
        _probe(gw.port, extra, accept_encoding)
    time.sleep(0.2)
    before = _rss(gw.pid)
    for _ in range(n):
        _probe(gw.port, extra, accept_encoding)
    time.sleep(0.2)
    return (_rss(gw.pid) - before) / n


def test_bytes_per_token_less_request_grow_with_the_header_count(real_gateway: Any) -> None:
    figures = {k: per_request_growth(real_gateway(name=f"h{k}"), k) for k in (0, 1, 3, 10, 20)}
    print("\n/proc bytes per token-less request by extra headers:", {k: round(v) for k, v in figures.items()})
    assert 300 < figures[0] < 2000  # Host alone: its key, value and the map
    assert figures[0] < figures[1] < figures[3] < figures[10] < figures[20]
    per_header = (figures[20] - figures[0]) / 20
    assert 200 < per_header < 800  # key + value duplicated, with the debug allocator's per-allocation cost


def test_whole_incident_on_the_real_binary(real_gateway: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zcnb.analysis import assess_leak
    from zcnb.collect.samples_csv import read_samples
    from zcnb.demo.realgw import locate_real_gateway
    from zcnb.demo.runner import DemoOptions, run_demo

    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN)
    exe = locate_real_gateway()
    lines: list[str] = []
    run = run_demo(incidents_dir=tmp_path, options=DemoOptions(gateway_binary=str(exe), probe_headers=20, sample_s=66.0, after_s=16.0),
                   progress=False, say=lines.append)
    folder = Path(run.folder)
    text = "\n".join(lines)
    assert "the real binary" in text
    summary = json.loads((folder / "summary.json").read_text())
    assert summary.get("verdict") == "leak" or json.loads((folder / "assessment.json").read_text())["verdict"] == "leak"
    # crash-free: no panic in the captured log, the restart was clean (no SIGKILL)
    journal = (folder / "journal.jsonl").read_text()
    assert "panic:" not in journal
    restart = next(json.loads(x) for x in (folder / "actions.jsonl").read_text().splitlines()
                   if json.loads(x).get("action") == "restart" and not json.loads(x).get("dry_run"))
    assert "kill -KILL" not in " ".join(restart["commands"]) and restart["details"]["report_lost"] is False, restart
    # the report names the real process
    html = (folder / "report.html").read_text()
    assert "zeptoclaw-gateway" in html and str(exe) in (folder / "samples.csv").read_text() + html + journal
    # bytes per token-less request: zcnb's growth estimate over the probes before the restart vs /proc
    truth = json.loads((folder / "ground_truth.json").read_text())
    df = read_samples(folder / "samples.csv")
    start = pd.Timestamp(restart["started_at"])
    pre = df[df.index < start] if isinstance(df.index, pd.DatetimeIndex) else df[df["timestamp"] < start]
    res = assess_leak(pre)  # the 66 s of probes before the restart: its own verdict and growth interval
    assert res.verdict == "leak" and res.growth_interval is not None, res
    times = pre.index if isinstance(pre.index, pd.DatetimeIndex) else pd.DatetimeIndex(pre["timestamp"])
    hours = (times[-1] - times[0]).total_seconds() / 3600
    probes = truth["unauth_by_phase"]["before"]
    low, high = (g * hours / probes for g in res.growth_interval)
    rss = pre["rss_bytes"].dropna()
    endpoints = (rss.iloc[-1] - rss.iloc[0]) / probes  # first to last sample: page-granular, noisy
    # /proc, controlled: a fresh real gateway, the same request shape (Host, Accept-Encoding, 20 X-Probe), 800 requests
    proc = per_request_growth(real_gateway(name="control"), 20, n=800, accept_encoding=True)
    print(f"\nper token-less request (22 headers): zcnb {low:.0f}-{high:.0f} B, /proc {proc:.0f} B "
          f"(first-to-last RSS of the incident: {endpoints:.0f} B), {probes} probes")
    assert low <= proc <= high
    for path in folder.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
