"""``zcnb receiver``: webhook parsing, auth, the run queue (dedup, one run per gateway, bound), the status page,
and (slow) a whole run on history in a real Prometheus with the gateway's journal in real journal files.

The queue tests replace the papermill run with a small function that waits on an event (a test double for
``run_alert``, so that runs can be held open and counted); the integration test runs the real thing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from alerting_helpers import backfill, wait_until
from prom_helpers import running_prometheus
from zcnb.alerting.alerts import Alert, parse_webhook
from zcnb.alerting.incidentrun import RunConfig, prometheus_base, refresh_report, run_alert
from zcnb.alerting.receiver import Receiver, read_receiver_token
from zcnb.alerting.runs import STATE_FILE, RunQueue
from zcnb.monitor.targets import parse_target
from zcnb.config import Secret
from zcnb.exceptions import ConfigError, ZcnbError
from zcnb.logs.journal import JOURNAL_REMOTE, write_journal

ROOT = Path(__file__).resolve().parent.parent
UNIT = "zeptoclaw-gateway.service"
TOKEN = "receiver-test-token-0123456789abcdef"


def _alert(fp: str = "a1", *, status: str = "firing", instance: str = "gw1", name: str = "ZeptoclawGatewayMemoryLeak",
           starts: str = "2026-12-04T10:00:00.123456789Z", runbook: str = "memory-leak") -> dict[str, Any]:
    return {"status": status, "fingerprint": fp, "startsAt": starts,
            "endsAt": "2026-12-04T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9/graph?g0.expr=x",
            "labels": {"alertname": name, "instance": instance, "unit": UNIT, "pid": "4242", "runbook": runbook,
                       "severity": "warning"},
            "annotations": {"summary": f"Memory leak: {instance} (pid 4242) baseline grows 60MiB/h"}}


def _body(*alerts: dict[str, Any]) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "receiver": "zcnb", "groupKey": "{}", "alerts": list(alerts),
                       "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": ""}).encode()


class HeldRuns:
    """Stands in for run_alert: records each call and holds it until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.refreshes: list[str] = []
        self.running = 0
        self.max_running = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def run(self, folder: Path, alert: Alert) -> Any:
        with self._lock:
            self.calls.append((alert.fingerprint, folder.name))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self.release.wait(20)
        (folder / "report.html").write_text("<html>report</html>")
        with self._lock:
            self.running -= 1
        return SimpleNamespace(ok=True, verdict="leak", report=folder / "report.html", error="")

    def refresh(self, folder: Path) -> Any:
        self.refreshes.append(folder.name)
        return SimpleNamespace(ok=True, verdict="leak", report=folder / "report.html", error="")


def _queue(tmp: Path, held: HeldRuns, **kw: Any) -> RunQueue:
    return RunQueue(tmp / "incidents", held.run, held.refresh, log=lambda _l: None, **kw)


# -- payloads -----------------------------------------------------------------------------------------
def test_webhook_parsing() -> None:
    alerts = parse_webhook(_body(_alert("abc"), _alert(fp="", status="resolved")))
    assert [a.status for a in alerts] == ["firing", "resolved"]
    assert alerts[0].gateway == ("gw1", UNIT) and alerts[0].pid == "4242" and alerts[0].fingerprint == "abc"
    assert len(alerts[1].fingerprint) == 16  # derived from the labels when missing
    for body, needle in ((b"not json", "not JSON"), (b"[]", "no 'alerts' list"),
                         (json.dumps({"version": "3", "alerts": []}).encode(), "version '3'"),
                         (_body({**_alert(), "status": "pending"}), "neither firing nor resolved"),
                         (_body({**_alert(), "labels": ["x"]}), "labels must be an object")):
        with pytest.raises(ConfigError, match=needle):
            parse_webhook(body)


def test_prometheus_base_from_the_alert() -> None:
    a = parse_webhook(_body({**_alert(), "generatorURL": "http://prom.example:9090/prom/graph?g0.expr=up"}))[0]
    assert prometheus_base(a, None) == "http://prom.example:9090/prom"
    assert prometheus_base(a, "http://127.0.0.1:9090") == "http://127.0.0.1:9090"
    with pytest.raises(ZcnbError, match="credentials"):
        prometheus_base(a, "http://user:pw@127.0.0.1:9090")
    with pytest.raises(ConfigError, match="no generatorURL"):
        prometheus_base(parse_webhook(_body({**_alert(), "generatorURL": ""}))[0], None)


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RX_TOKEN", TOKEN)
    assert read_receiver_token(token_env="RX_TOKEN", token_file=None) == Secret(TOKEN)
    f = tmp_path / "token"
    f.write_text(TOKEN)
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        read_receiver_token(token_env=None, token_file=str(f))
    f.chmod(0o600)
    assert read_receiver_token(token_env=None, token_file=str(f)) == Secret(TOKEN)
    f.write_text("short")
    with pytest.raises(ConfigError, match="shorter than 16"):
        read_receiver_token(token_env=None, token_file=str(f))


# -- the queue ----------------------------------------------------------------------------------------
def test_dedup_per_fingerprint_and_one_incident_per_gateway(tmp_path: Path) -> None:
    held = HeldRuns()
    q = _queue(tmp_path, held, workers=2).start()
    try:
        a = parse_webhook(_body(_alert("f1")))[0]
        first = q.firing(a)
        assert first.action == "queued" and first.run is not None
        assert q.firing(a).action == "duplicate"  # Alertmanager's repeat: no second run
        fast = parse_webhook(_body(_alert("f2", name="ZeptoclawGatewayMemoryLeakFast")))[0]
        attached = q.firing(fast)
        assert attached.action == "attached" and attached.run is not None and attached.run.id == first.run.id
        wait_until(lambda: held.calls, timeout_s=10, what="the run to start")
        held.release.set()
        wait_until(lambda: q.runs()[0].status == "done", timeout_s=10, what="the run to finish")
        assert q.firing(a).action == "duplicate"  # finished, but within rerun_after: still no second run
        assert q.firing(fast).action == "duplicate"  # the attached alert's repeats too
        again = parse_webhook(_body(_alert("f1", starts="2026-12-04T11:00:00Z")))[0]
        assert q.firing(again).action == "duplicate"
    finally:
        q.stop()
    runs = q.runs()
    assert len(runs) == 1 and len(held.calls) == 1
    r = runs[0]
    assert (r.deliveries, r.attached, r.verdict, r.status) == (5, ("f2",), "leak", "done")
    events = [json.loads(ln) for ln in (Path(r.folder) / "alerts.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["alert", "alert", "alert"]
    assert events[0]["time"].startswith("2026-12-04T10:00:00.123456")  # the alert's own startsAt
    assert "ZeptoclawGatewayMemoryLeakFast" in events[1]["what"] and "firing again" in events[2]["what"]
    assert json.loads((Path(r.folder) / "alert.json").read_text())["fingerprint"] == "f1"
    assert len([p for p in (tmp_path / "incidents").iterdir() if p.is_dir()]) == 1


def test_one_run_per_gateway_at_a_time_and_a_bounded_queue(tmp_path: Path) -> None:
    held = HeldRuns()
    q = _queue(tmp_path, held, workers=2, max_queue=2, rerun_after_s=0).start()
    try:
        gw1 = parse_webhook(_body(_alert("b1", instance="gw1")))[0]
        gw2 = parse_webhook(_body(_alert("b2", instance="gw2")))[0]
        assert q.firing(gw1).action == "queued" and q.firing(gw2).action == "queued"
        wait_until(lambda: len(held.calls) == 2, timeout_s=10, what="two gateways running at once")
        assert held.max_running == 2
        assert q.firing(parse_webhook(_body(_alert("b3", instance="gw3")))[0]).action == "queued"
        assert q.firing(parse_webhook(_body(_alert("b4", instance="gw4")))[0]).action == "queued"
        refused = q.firing(parse_webhook(_body(_alert("b5", instance="gw5")))[0])
        assert refused.action == "refused" and "2 runs are queued" in refused.reason
        held.release.set()
        wait_until(lambda: all(r.status == "done" for r in q.runs()), timeout_s=20, what="all runs")
        # rerun_after=0: the same alert runs again after its run ended; same gateway, one at a time
        assert q.firing(gw1).action == "queued"
        wait_until(lambda: len(held.calls) == 5, timeout_s=10, what="the rerun")
    finally:
        q.stop()
    assert held.max_running <= 2 and len(q.runs()) == 5


def test_a_failed_run_is_retried_after_retry_after(tmp_path: Path) -> None:
    def broken(folder: Path, alert: Alert) -> Any:
        raise RuntimeError("prometheus unreachable")

    q = RunQueue(tmp_path / "incidents", broken, HeldRuns().refresh, retry_after_s=600, log=lambda _l: None).start()
    try:
        a = parse_webhook(_body(_alert("fa")))[0]
        q.firing(a)
        wait_until(lambda: q.runs()[0].status == "failed", timeout_s=10, what="the run to fail")
        assert "prometheus unreachable" in q.runs()[0].error
        assert q.firing(a).action == "duplicate"  # not again at once
        q.retry_after_s = 0
        assert q.firing(a).action == "queued"
    finally:
        q.stop()


def test_resolved_goes_on_the_timeline_and_rebuilds_the_report(tmp_path: Path) -> None:
    held = HeldRuns()
    held.release.set()
    q = _queue(tmp_path, held).start()
    try:
        q.firing(parse_webhook(_body(_alert("c1")))[0])
        wait_until(lambda: q.runs()[0].status == "done", timeout_s=10, what="the run")
        d = q.resolved(parse_webhook(_body(_alert("c1", status="resolved")))[0])
        assert d.action == "resolved"
        wait_until(lambda: held.refreshes, timeout_s=10, what="the report rebuilt")
        assert q.resolved(parse_webhook(_body(_alert("c1", status="resolved")))[0]).action == "duplicate"
        assert q.resolved(parse_webhook(_body(_alert("cc", status="resolved")))[0]).action == "ignored"
    finally:
        q.stop()
    r = q.runs()[0]
    events = [json.loads(ln) for ln in (Path(r.folder) / "alerts.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "alert-resolved" and events[-1]["time"].startswith("2026-12-04T10:30:00")
    assert r.resolved and held.refreshes == [Path(r.folder).name]
    from zcnb.incident import open_incident
    from zcnb.report.timeline import build_timeline

    kinds = [e.kind for e in build_timeline(open_incident(r.folder)).entries]
    assert kinds == ["alert", "alert-resolved"]


def test_state_survives_a_restart_of_the_receiver(tmp_path: Path) -> None:
    held = HeldRuns()
    q = _queue(tmp_path, held).start()
    q.firing(parse_webhook(_body(_alert("d1", instance="gw1")))[0])
    q.firing(parse_webhook(_body(_alert("d2", instance="gw2")))[0])
    wait_until(lambda: held.calls, timeout_s=10, what="a run to start")
    held.release.set()
    wait_until(lambda: any(r.status == "done" for r in q.runs()), timeout_s=10, what="a run to end")
    q.stop()
    state = tmp_path / "incidents" / STATE_FILE
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    q2 = _queue(tmp_path, HeldRuns())
    statuses = {r.fingerprint: r.status for r in q2.runs()}
    assert statuses["d1"] == "done" and statuses["d2"] in ("done", "interrupted")
    assert q2.firing(parse_webhook(_body(_alert("d1", instance="gw1")))[0]).action == "duplicate"


# -- HTTP ---------------------------------------------------------------------------------------------
def _receiver(tmp: Path, held: HeldRuns, **kw: Any) -> Receiver:
    return Receiver(_queue(tmp, held, **kw), token=Secret(TOKEN), port=0, log=lambda _l: None)


def test_http_auth_limits_status_and_reports(tmp_path: Path) -> None:
    held = HeldRuns()
    held.release.set()
    with _receiver(tmp_path, held, max_queue=1) as rx:
        url = rx.url
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{url}/alerts", content=_body(_alert())).status_code == 401
        assert httpx.post(f"{url}/alerts", content=_body(_alert()),
                          headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        assert httpx.get(f"{url}/status.json").status_code == 401
        assert httpx.get(f"{url}/-/healthy").text == "ok\n"
        assert httpx.post(f"{url}/alerts", content=b"{", headers=auth).status_code == 400
        big = httpx.post(f"{url}/alerts", content=b"x" * (1 << 20 + 1), headers=auth)
        assert big.status_code == 413
        r = httpx.post(f"{url}/alerts", content=_body(_alert("e1"), _alert("0f", runbook="crash-loop")), headers=auth)
        assert r.status_code == 200
        rows = r.json()["results"]
        assert [row["decision"] for row in rows] == ["queued", "ignored"] and rows[0]["incident"]
        wait_until(lambda: httpx.get(f"{url}/status.json", headers=auth).json()["runs"][0]["status"] == "done",
                   timeout_s=10, what="the run")
        status = httpx.get(f"{url}/status.json", headers=auth).json()
        run = status["runs"][0]
        assert run["report_url"] == f"{url}/incidents/{Path(run['folder']).name}/report.html"
        assert httpx.get(run["report_url"], headers=auth).text == "<html>report</html>"
        for bad in ("/incidents/../../etc/passwd", f"/incidents/{Path(run['folder']).name}/alert.json",
                    "/incidents/nope/report.html", "/status.json/../x"):
            assert httpx.get(f"{url}{bad}", headers=auth).status_code == 404, bad
        page = httpx.get(f"{url}/status", headers=auth).text
        assert "ZeptoclawGatewayMemoryLeak" in page and "report.html" in page and TOKEN not in page
        # a full queue answers 503 so that Alertmanager retries
        held.release.clear()
        assert httpx.post(f"{url}/alerts", content=_body(_alert("e2", instance="gw2")), headers=auth).status_code == 200
        wait_until(lambda: held.running == 1, timeout_s=10, what="gw2 running")
        assert httpx.post(f"{url}/alerts", content=_body(_alert("e3", instance="gw3")), headers=auth).status_code == 200
        full = httpx.post(f"{url}/alerts", content=_body(_alert("e4", instance="gw4")), headers=auth)
        assert full.status_code == 503 and full.json()["results"][0]["decision"] == "refused"
        held.release.set()


def _zcnb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full.pop("ZCNB_RECEIVER_TOKEN", None) if env is None else None
    return subprocess.run([sys.executable, "-m", "zcnb", *args], capture_output=True, text=True, env=full,
                          check=False, timeout=60)


def test_cli_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    out = _zcnb("receiver", "--listen", "127.0.0.1:0", "--incidents-dir", str(tmp_path))
    assert out.returncode == 2 and "no token for the webhook" in out.stderr and "--no-auth" in out.stderr
    f = tmp_path / "t"
    f.write_text(TOKEN)
    f.chmod(0o640)
    out = _zcnb("receiver", "--token-file", str(f), "--incidents-dir", str(tmp_path))
    assert out.returncode == 2 and "chmod 600" in out.stderr
    out = _zcnb("receiver", "--no-auth", "--match", "runbook", "--incidents-dir", str(tmp_path))
    assert out.returncode == 2 and "is not LABEL=VALUE" in out.stderr


# -- a whole run --------------------------------------------------------------------------------------
needs_journal = pytest.mark.skipif(not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")),
                                   reason="systemd-journal-remote / journalctl not installed")

SKILLS = {"git_workflow": 7, "web-qa": 3, "semantic_search": 2}


@pytest.mark.slow
@needs_journal
def test_run_on_prometheus_history_and_the_units_journal(tmp_path: Path) -> None:
    """History backfilled into a real Prometheus (a leak of 2 MiB/min over 20 minutes, a restart in the
    middle) and the unit's journal in real journal files: the run's report has the verdict and skill counts,
    and a resolution rebuilds it with the resolution on the timeline."""
    now = time.time()
    lab = 'instance="gw1",job="zcnb-exporter",unit="zeptoclaw-gateway.service",pid="{}"'
    rss: list[tuple[float, float]] = []
    series: dict[str, list[tuple[float, float]]] = {}
    for i in range(0, 1200, 15):
        pid = 4242 if i < 600 else 4300
        v = 80e6 + ((i if i < 600 else i - 600) / 60) * 2 * 2**20
        series.setdefault(f"zcnb_gateway_resident_memory_bytes{{{lab.format(pid)}}}", []).append((now - 1200 + i, v))
        series.setdefault(f"zcnb_gateway_unique_memory_bytes{{{lab.format(pid)}}}", []).append((now - 1200 + i, v * 0.9))
        rss.append((now - 1200 + i, v))
    backfill(tmp_path, series)
    t0 = int((now - 1100) * 1e6)
    entries: list[dict[str, str | bytes | int]] = []
    k = 0
    for name, n in SKILLS.items():
        for _ in range(n):
            entries.append({"__REALTIME_TIMESTAMP": t0 + k * 10_000_000, "_SYSTEMD_USER_UNIT": UNIT, "_PID": 4300,
                            "PRIORITY": 6, "MESSAGE": f'info: [agent] tool skill args={{"name":"{name}"}}'})
            k += 1
    entries.append({"__REALTIME_TIMESTAMP": t0 + 5, "_SYSTEMD_USER_UNIT": UNIT, "_PID": 4242, "PRIORITY": 6,
                    "MESSAGE": "Main Token: s3cr3t-gateway-token-value"})
    jfiles = write_journal(entries, tmp_path / "j" / "gw.journal")
    incidents = tmp_path / "incidents"
    with running_prometheus(tmp_path, lambda _p: "global:\n  scrape_interval: 15s\n") as prom:
        cfg = RunConfig(incidents_dir=incidents, prometheus_url=prom, history_s=1500, step="15s",
                        targets=(parse_target(f"instance=gw1,unit={UNIT},journal_file={jfiles[0]}"),),
                        stage_timeout_s=300)
        with Receiver(RunQueue(incidents, lambda f, a: run_alert(f, a, cfg), lambda f: refresh_report(f, cfg),
                               log=lambda _l: None), token=Secret(TOKEN), port=0, log=lambda _l: None) as rx:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            alert = _alert("abc1", instance="gw1")
            assert httpx.post(f"{rx.url}/alerts", content=_body(alert), headers=auth).status_code == 200
            run = wait_until(lambda: [r for r in httpx.get(f"{rx.url}/status.json", headers=auth).json()["runs"]
                                      if r["status"] != "queued" and r["status"] != "running"],
                             timeout_s=240, what="the run")[0]
            assert run["status"] == "done", run
            folder = Path(run["folder"])
            first_html = (folder / "report.html").read_text()
            resolved = {**alert, "status": "resolved", "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            httpx.post(f"{rx.url}/alerts", content=_body(resolved), headers=auth)
            wait_until(lambda: "alert-resolved" in (folder / "report.html").read_text(), timeout_s=120,
                       what="the report rebuilt with the resolution")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["assessment"]["verdict"] == "leak" and run["verdict"] == "leak"
    assert summary["skills"] == {"git-workflow": 7, "web-qa": 3, "semantic-search": 2}
    assert [s["stage"] for s in summary["stages"]] == ["01", "03"]  # kept through the report-only rebuild
    assert len(summary["restarts"]) == 1  # the pid change in the history
    samples = (folder / "samples.csv").read_text()
    assert "zcnb exporter series from Prometheus" in samples and ",restart,pid 4242 -> 4300" in samples
    html = (folder / "report.html").read_text()
    assert "git-workflow" in first_html and "alert-resolved" not in first_html
    assert "s3cr3t-gateway-token-value" not in (folder / "journal.jsonl").read_text() + html
    kinds = [e["kind"] for e in summary["timeline"]]
    assert "alert" in kinds and "alert-resolved" in kinds and "collected" in kinds
    assert not any(p.name.startswith(("02_", "04_", "06_")) for p in folder.iterdir())  # never run
