"""From alert to report, end to end on loopback, every part real.

The real gateway leaks under token-less traffic; ``zcnb exporter`` reads its /proc and its log file; a real
Prometheus scrapes the exporter every second with the rules of ``zcnb alert-rules`` (short windows); a real
Alertmanager routes the alert to ``zcnb receiver``, which runs stages 01, 03 and the report. One incident, with
the leak verdict and the skill counts; Alertmanager's repeated notifications start no second run.

Order: Prometheus, exporter, receiver and Alertmanager start first, and the gateway only once Prometheus scrapes
the exporter, so Prometheus's history covers the gateway's whole life: when the warm-up guard lets the leak alert
fire, the incident holds the 60 s of samples stage 01 needs for a verdict. The test's length is that minute
plus the run itself.

Skill lines, the one thing not produced by the binary: the real gateway logs a skill call only from its agent
loop (``[agent] tool skill args={...}``, src/agent/loop.zig), which needs NVIDIA's hosted API at a fixed https
URL and cannot run offline. The test appends such lines, in the binary's own format, to the gateway's log
(both append to it), so the counts can be checked through the exporter, Prometheus and the receiver's report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting_helpers import TokenlessTraffic, real_gateway, running_alertmanager, wait_until, zcnb_server
from prom_helpers import free_port, running_prometheus

pytestmark = pytest.mark.slow

ALERT = "ZeptoclawGatewayMemoryLeak"
# The leak rule waits until the process is this old. Stage 01 needs 60 s of history; Prometheus scrapes the
# exporter before the gateway starts, and the exporter sees a new process within about 2 s (it looks again at
# most once a second, Prometheus scrapes every second); the alert's "for" and its delivery add 3 s or more.
WARMUP_S = 62
RULE_ARGS = ["--baseline-window", "5s", "--trend-window", "30s", "--step", "1s", "--for", "2s",
             "--warmup", f"{WARMUP_S}s"]
SKILL_LINES = [  # the agent loop's format: std.log.info("[agent] tool {s} args={s}", ...)
    *['info: [agent] tool skill args={"name":"git_workflow","command":"/git-status"}'] * 3,
    *['info: [agent] tool skill args={"name":"web-qa"}'] * 2,
    'info: [agent] tool web_fetch args={"url":"http://127.0.0.1/"}',
]
SKILLS = {"git-workflow": 3, "web-qa": 2}


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


def _get(url: str, token: str | None = None, **params: str) -> Any:
    """JSON from ``url`` (None when it cannot be had: a part not up yet)."""
    try:
        r = httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=5)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def _tail(path: Path, n: int = 1500) -> str:
    return path.read_text(errors="replace")[-n:] if path.is_file() else "(no file)"


class Parts:
    """URLs of the running parts, and what they say when a wait times out."""

    def __init__(self, tmp: Path, token: str) -> None:
        self.tmp, self.token = tmp, token
        self.prometheus = self.receiver = ""

    def runs(self) -> list[dict[str, Any]]:
        status = _get(f"{self.receiver}/status.json", self.token)
        return list(status["runs"]) if status else []

    def firing(self) -> list[dict[str, Any]]:
        doc = _get(f"{self.prometheus}/api/v1/alerts")
        alerts = doc["data"]["alerts"] if doc else []
        return [a for a in alerts if a["labels"].get("alertname") == ALERT and a["state"] == "firing"]

    def query(self, promql: str) -> list[Any]:
        doc = _get(f"{self.prometheus}/api/v1/query", query=promql)
        return list(doc["data"]["result"]) if doc else []

    def context(self) -> str:
        """Rule states, the RSS series, the receiver's runs and the tail of every part's log (redacted)."""
        from zcnb.redact import default_redactor

        rules = _get(f"{self.prometheus}/api/v1/rules") if self.prometheus else None
        states = [(r["name"], r.get("state"), r.get("health"), r.get("lastError", ""))
                  for g in (rules or {}).get("data", {}).get("groups", []) for r in g["rules"]]
        rss = self.query('zcnb_gateway_resident_memory_bytes{instance="e2e-gw"}') if self.prometheus else []
        logs = "".join(f"--- {name}:\n{_tail(self.tmp / name)}\n" for name in
                       ("gw.log", "exporter.log", "prometheus.log", "alertmanager.log", "receiver.log"))
        text = (f"rules: {states}\nRSS in Prometheus: {[(s['metric'].get('pid'), s['value'][1]) for s in rss]}\n"
                f"receiver runs: {self.runs() if self.receiver else '(not started)'}\n{logs}")
        return str(default_redactor(secrets=[self.token])(text))


def _start_watchers(stack: ExitStack, tmp: Path, parts: Parts, token_file: Path, spec: str) -> str:
    """Prometheus, exporter, receiver and Alertmanager; returns the exporter's /metrics URL once Prometheus
    scrapes it (Prometheus applies its targets about 5 s after it starts: the gateway must start after that)."""
    ports = {name: free_port() for name in ("exporter", "prometheus", "alertmanager", "receiver")}
    rules = tmp / "rules.yml"
    subprocess.run([sys.executable, "-m", "zcnb", "alert-rules", "--out", str(rules), *RULE_ARGS], check=True,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
                   capture_output=True, timeout=60)
    config = _prometheus_config(f"127.0.0.1:{ports['exporter']}", f"127.0.0.1:{ports['alertmanager']}", rules)
    parts.prometheus = stack.enter_context(running_prometheus(
        tmp, lambda _p: config, port=ports["prometheus"], extra_args=["--rules.alert.resend-delay=1s"]))
    _proc, metrics_url = stack.enter_context(zcnb_server(
        ["exporter", "--gateway", spec, "--listen", f"127.0.0.1:{ports['exporter']}"], tmp / "exporter.log"))
    _proc, alerts_url = stack.enter_context(zcnb_server(
        ["receiver", "--listen", f"127.0.0.1:{ports['receiver']}", "--token-file", str(token_file),
         "--incidents-dir", str(tmp / "incidents"), "--history", "10m", "--step", "1s", "--gateway", spec,
         "--prometheus-url", parts.prometheus], tmp / "receiver.log"))
    parts.receiver = alerts_url.removesuffix("/alerts")
    stack.enter_context(running_alertmanager(tmp, alerts_url, token_file, port=ports["alertmanager"]))
    _phase("Prometheus to scrape the exporter", lambda: parts.query('zcnb_gateway_up{instance="e2e-gw"}'), 60, parts)
    return metrics_url


def _phase(what: str, pred: Callable[[], Any], timeout_s: float, parts: Parts) -> Any:
    t0 = time.monotonic()
    value = wait_until(pred, timeout_s=timeout_s, what=what, interval_s=0.5, context=parts.context)
    print(f"{what}: {time.monotonic() - t0:.1f} s")
    return value


def test_leak_alert_to_one_incident_report(tmp_path: Path) -> None:
    token = "e2e-" + os.urandom(16).hex()
    token_file = tmp_path / "receiver.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    parts = Parts(tmp_path, token)
    auth = {"Authorization": f"Bearer {token}"}
    pid_file, log = tmp_path / "e2e-gw.pid", tmp_path / "gw.log"
    spec = f"instance=e2e-gw,pid_file={pid_file},log_file={log}"
    with ExitStack() as stack:
        metrics_url = _start_watchers(stack, tmp_path, parts, token_file, spec)
        gw = stack.enter_context(real_gateway(tmp_path, log_path=log, pid_file=pid_file))
        traffic = stack.enter_context(TokenlessTraffic(gw.port, rate=100))
        with log.open("a") as fh:
            fh.write("".join(line + "\n" for line in SKILL_LINES))
        _phase("Prometheus to hold the gateway's RSS from the exporter",
               lambda: parts.query(f'zcnb_gateway_resident_memory_bytes{{pid="{gw.pid}"}}'), 30, parts)
        # Bounded waits, each generous for a loaded 2-core machine; a timeout says what every part reports.
        _phase("the leak alert to fire in Prometheus", parts.firing, WARMUP_S + 90, parts)
        _phase("Alertmanager to deliver it to the receiver", parts.runs, 60, parts)
        run = _phase("the receiver's run to finish",
                     lambda: next((r for r in parts.runs() if r["status"] in ("done", "failed")), None), 300, parts)
        # Alertmanager repeats the firing notification every 2 s: wait for one after the run ended.
        _phase("a repeated notification of the same alert",
               lambda: parts.runs()[0]["deliveries"] > run["deliveries"], 30, parts)
        runs = parts.runs()
        page = httpx.get(f"{parts.receiver}/status", headers=auth, timeout=5)
        report_page = httpx.get(runs[0]["report_url"], headers=auth, timeout=5) if runs[0]["report_url"] else None
        unauth = httpx.get(f"{parts.receiver}/status.json", timeout=5)
        metrics = httpx.get(metrics_url, timeout=5).text
        print(f"token-less requests sent: {traffic.sent}")
    receiver_log = (tmp_path / "receiver.log").read_text()
    assert len(runs) == 1, runs  # one incident, however often the alert was delivered
    run = runs[0]
    assert run["status"] == "done", (run, receiver_log[-3000:])
    assert (run["alertname"], run["instance"], run["pid"]) == (ALERT, "e2e-gw", str(gw.pid)), run
    assert run["deliveries"] >= 2 and run["verdict"] == "leak", run
    folder = Path(run["folder"])
    assert [p for p in (tmp_path / "incidents").iterdir() if p.is_dir()] == [folder]  # exactly one incident
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["assessment"]["verdict"] == "leak", summary["assessment"]
    assert [s["stage"] for s in summary["stages"]] == ["01", "03"] and summary["ok"], summary["stages"]
    assert summary["skills"] == SKILLS, summary["skills"]
    html = (folder / "report.html").read_text()
    assert all(name in html for name in SKILLS) and "leak" in html
    assert ALERT in html  # the alert on the evidence timeline
    for skill, n in SKILLS.items():
        assert f'zcnb_gateway_skill_invocations_total{{instance="e2e-gw",skill="{skill}",unit=""}} {n}.0' in metrics
    assert f'zcnb_gateway_resident_memory_bytes{{instance="e2e-gw",pid="{gw.pid}",unit=""}}' in metrics
    assert page.status_code == 200 and folder.name in page.text and "report.html" in page.text
    assert report_page is not None and report_page.status_code == 200 and report_page.text == html
    assert unauth.status_code == 401
    assert f"report {run['report']}" in receiver_log
    assert token not in receiver_log and token not in html
    written = "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p.suffix != ".png")
    assert gw.token in gw.log_path.read_text() and gw.token not in written  # the banner's token is redacted
    assert "Main Token: [REDACTED]" in (folder / "journal.jsonl").read_text()
