"""From alert to report, end to end on loopback, every part real.

The real gateway leaks under token-less traffic; ``zcnb exporter`` reads its /proc and its log file; a real
Prometheus scrapes the exporter every second with the rules of ``zcnb alert-rules`` (short windows); a real
Alertmanager routes the alert to ``zcnb receiver``, which runs stages 01, 03 and the report. One incident, with
the leak verdict and the log counts; Alertmanager's repeated notifications start no second run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from alerting_helpers import (TokenlessTraffic, real_gateway, running_alertmanager, wait_until, zcnb_server)
from prom_helpers import free_port, running_prometheus

pytestmark = pytest.mark.slow

# Short windows so the test takes about a minute: the leak rule cannot fire before the process is 60 s old
# (the warm-up guard), which is also the least history stage 01 needs for a verdict.
RULE_ARGS = ["--baseline-window", "5s", "--trend-window", "30s", "--step", "1s", "--for", "5s", "--warmup", "62s"]


def _status(url: str, token: str) -> dict:  # type: ignore[type-arg]
    r = httpx.get(f"{url}/status.json", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def _prometheus_config(exporter: str, alertmanager: str, rules: Path) -> str:
    return f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ['{alertmanager}']}}]
scrape_configs:
  - job_name: zcnb-exporter
    honor_labels: true
    static_configs: [{{targets: ['{exporter}']}}]
"""


def test_leak_alert_to_one_incident_report(tmp_path: Path) -> None:
    token = "e2e-" + os.urandom(16).hex()
    token_file = tmp_path / "receiver.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    incidents = tmp_path / "incidents"
    rules = tmp_path / "rules.yml"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-m", "zcnb", "alert-rules", "--out", str(rules), *RULE_ARGS], check=True,
                   env=env, capture_output=True)
    prom_port = free_port()
    with real_gateway(tmp_path) as gw, TokenlessTraffic(gw.port, rate=100) as traffic:
        spec = f"instance=e2e-gw,pid_file={gw.pid_file},log_file={gw.log_path}"
        with zcnb_server(["exporter", "--gateway", spec, "--listen", "127.0.0.1:0"],
                         tmp_path / "exporter.log") as (_e, metrics_url), \
             zcnb_server(["receiver", "--listen", "127.0.0.1:0", "--token-file", str(token_file),
                          "--incidents-dir", str(incidents), "--history", "10m", "--step", "1s", "--gateway", spec,
                          "--prometheus-url", f"http://127.0.0.1:{prom_port}"],
                         tmp_path / "receiver.log") as (_r, alerts_url), \
             running_alertmanager(tmp_path, alerts_url, token_file) as am_url:
            base = alerts_url.removesuffix("/alerts")
            exporter = metrics_url.split("//", 1)[1].split("/", 1)[0]
            config = _prometheus_config(exporter, am_url.split("//", 1)[1], rules)
            with running_prometheus(tmp_path, lambda _p: config, port=prom_port):
                runs = wait_until(lambda: [r for r in _status(base, token)["runs"] if r["status"] in ("done", "failed")],
                                  timeout_s=150, what="a finished run on the receiver's status page")
                run = runs[0]
                # Alertmanager repeats the firing notification every 2 s: wait for one after the run ended.
                after = run["deliveries"]
                wait_until(lambda: _status(base, token)["runs"][0]["deliveries"] > after, timeout_s=20,
                           what="a repeated notification of the same alert")
                status = _status(base, token)
                page = httpx.get(f"{base}/status", headers={"Authorization": f"Bearer {token}"}, timeout=5)
                report_page = httpx.get(run["report_url"], headers={"Authorization": f"Bearer {token}"}, timeout=5)
                unauth = httpx.get(f"{base}/status.json", timeout=5)
                metrics = httpx.get(metrics_url, timeout=5).text
        print(f"token-less requests sent: {traffic.sent}")
    assert len(status["runs"]) == 1, status
    run = status["runs"][0]
    assert run["status"] == "done", (run, (tmp_path / "receiver.log").read_text()[-3000:])
    assert run["alertname"] == "ZeptoclawGatewayMemoryLeak" and run["instance"] == "e2e-gw"
    assert run["pid"] == str(gw.pid)
    assert run["deliveries"] >= 2 and run["verdict"] == "leak"
    folder = Path(run["folder"])
    assert [p for p in incidents.iterdir() if p.is_dir()] == [folder]  # exactly one incident
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["assessment"]["verdict"] == "leak", summary["assessment"]
    assert [s["stage"] for s in summary["stages"]] == ["01", "03"] and summary["ok"]
    log_summary = json.loads((folder / "log_summary.json").read_text())
    assert log_summary["skills"] == [] and summary["skills"] == {}  # the real gateway logs no skill offline
    html = (folder / "report.html").read_text()
    assert "No skill invocations" in html and "leak" in html
    assert "ZeptoclawGatewayMemoryLeak" in html  # the alert on the evidence timeline
    assert page.status_code == 200 and folder.name in page.text and "report.html" in page.text
    assert report_page.status_code == 200 and report_page.text == html
    assert unauth.status_code == 401
    assert token not in (tmp_path / "receiver.log").read_text() and token not in html
    written = "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p.suffix != ".png")
    assert gw.token in gw.log_path.read_text() and gw.token not in written  # the banner's token is redacted
    assert "Main Token: [REDACTED]" in (folder / "journal.jsonl").read_text()
    assert f'zcnb_gateway_resident_memory_bytes{{instance="e2e-gw",pid="{gw.pid}",unit=""}}' in metrics
    assert f"report {run['report']}" in (tmp_path / "receiver.log").read_text()
