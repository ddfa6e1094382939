"""The receiver's runs: dedup per alert fingerprint, one run per gateway at a time, a bounded queue.

A firing leak alert:

- whose fingerprint already has a run (its own, or one it was attached to) that is queued, running, or finished
  less than ``rerun_after_s`` ago (failed: ``retry_after_s``) is a *duplicate*: counted on that run
  (Alertmanager repeats notifications), nothing started; a new firing episode (another ``startsAt``) of it goes
  on that incident's timeline;
- for a gateway that already has a queued or running run is *attached* to it (e.g. the fast-leak and the leak
  alert of one gateway): one incident, both alerts on its timeline;
- otherwise gets a new dated incident folder (``alert.json``, the firing on the timeline) and a queued run,
  unless ``max_queue`` runs are already waiting: then it is *refused* (the webhook answers 503 and
  Alertmanager retries later).

Workers take the oldest queued job whose gateway has no job running. A resolved alert goes on its incident's
timeline; once the run is done the report is built again so it shows the resolution. The runs are kept in
``<incidents_dir>/.zcnb-receiver-runs.json`` (0600), so dedup holds across restarts of the receiver; runs
that were queued or running when it stopped are marked ``interrupted``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .alerts import Alert, alert_time, record_event, write_alert

__all__ = ["Decision", "RunQueue", "RunRecord"]

ACTIVE = ("queued", "running")
STATE_FILE = ".zcnb-receiver-runs.json"


@dataclass(frozen=True)
class RunRecord:
    """One incident run (one line of the status page)."""

    id: int
    fingerprint: str
    alertname: str
    instance: str
    unit: str
    pid: str
    starts_at: str
    folder: str
    status: str = "queued"  # queued | running | done | failed | interrupted
    received_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    deliveries: int = 1
    attached: tuple[str, ...] = ()
    resolved: bool = False
    verdict: str | None = None
    report: str | None = None
    error: str = ""

    @property
    def gateway(self) -> tuple[str, str]:
        return self.instance, self.unit

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["attached"] = list(self.attached)
        return d


@dataclass(frozen=True)
class Decision:
    """What the queue did with one alert."""

    action: str  # queued | duplicate | attached | refused | resolved | ignored
    run: RunRecord | None = None
    reason: str = ""


Runner = Callable[[Path, Alert], Any]  # returns an object with ok, verdict, report, error


@dataclass
class _Job:
    kind: str  # run | refresh
    run_id: int
    alert: Alert | None = None


class RunQueue:
    """Thread-safe run bookkeeping and ``workers`` worker threads calling ``runner`` / ``refresher``."""

    def __init__(self, incidents_dir: Path, runner: Runner, refresher: Callable[[Path], Any], *,
                 max_queue: int = 8, workers: int = 1, rerun_after_s: float = 6 * 3600.0,
                 retry_after_s: float = 600.0, log: Callable[[str], None] = print) -> None:
        from ..files import ensure_private_dir

        self.dir = ensure_private_dir(incidents_dir)
        self.runner, self.refresher, self.log = runner, refresher, log
        self.max_queue, self.rerun_after_s, self.retry_after_s = max_queue, rerun_after_s, retry_after_s
        self._cv = threading.Condition()
        self._runs: dict[int, RunRecord] = {}
        self._jobs: list[_Job] = []
        self._busy: set[tuple[str, str]] = set()
        self._stop = False
        self._load()
        self._threads = [threading.Thread(target=self._work, name=f"zcnb-receiver-{i}", daemon=True)
                         for i in range(max(1, workers))]

    # -- bookkeeping ------------------------------------------------------------------------------
    def _load(self) -> None:
        from ..files import read_json

        path = self.dir / STATE_FILE
        if not path.is_file():
            return
        try:
            rows = read_json(path)
        except (OSError, ValueError):
            self.log(f"zcnb receiver: {path} is unreadable; starting with no run history")
            return
        for row in rows if isinstance(rows, list) else []:
            try:
                rec = RunRecord(**{**row, "attached": tuple(row.get("attached") or ())})
            except TypeError:
                continue
            if rec.status in ACTIVE:
                rec = replace(rec, status="interrupted", error="the receiver stopped before this run finished")
            self._runs[rec.id] = rec

    def _save(self) -> None:
        from ..files import write_json

        write_json(self.dir / STATE_FILE, [r.to_dict() for r in sorted(self._runs.values(), key=lambda r: r.id)])

    def runs(self) -> list[RunRecord]:
        with self._cv:
            return sorted(self._runs.values(), key=lambda r: r.id, reverse=True)

    def queued(self) -> int:
        with self._cv:
            return sum(1 for j in self._jobs if j.kind == "run")

    def _put(self, rec: RunRecord) -> RunRecord:
        self._runs[rec.id] = rec
        self._save()
        return rec

    # -- decisions --------------------------------------------------------------------------------
    def firing(self, alert: Alert) -> Decision:
        """Decide what to do with a firing leak alert (see the module docstring)."""
        with self._cv:
            same = [r for r in self._runs.values() if self._covers(r, alert.fingerprint)]
            if same:
                rec = max(same, key=lambda r: r.id)
                if alert.starts_at and alert.starts_at != rec.starts_at:
                    self._event(rec, "alert", f"{alert.describe()} firing again (since {alert.starts_at})", alert)
                    rec = replace(rec, starts_at=alert.starts_at, resolved=False)
                return Decision("duplicate", self._put(replace(rec, deliveries=rec.deliveries + 1)),
                                f"run {rec.id} already covers this alert")
            busy = [r for r in self._runs.values() if r.gateway == alert.gateway and r.status in ACTIVE]
            if busy:
                rec = busy[0]
                self._event(rec, "alert", f"{alert.describe()} firing (attached to this incident)", alert)
                return Decision("attached", self._put(replace(rec, attached=(*rec.attached, alert.fingerprint))),
                                f"run {rec.id} for this gateway is {rec.status}")
            if sum(1 for j in self._jobs if j.kind == "run") >= self.max_queue:
                return Decision("refused", None, f"{self.max_queue} runs are queued already; retry later")
            rec = self._new_run(alert)
            self._jobs.append(_Job("run", rec.id, alert))
            self._cv.notify_all()
            return Decision("queued", rec)

    def _covers(self, r: RunRecord, fingerprint: str) -> bool:
        """Whether run ``r`` already answers this alert: its own or attached, and not too old to count."""
        if fingerprint != r.fingerprint and fingerprint not in r.attached:
            return False
        if r.status in ACTIVE:
            return True
        # A failed or interrupted run is tried again sooner than a finished one is repeated.
        wait = self.rerun_after_s if r.status == "done" else min(self.retry_after_s, self.rerun_after_s)
        return r.finished_at is not None and r.finished_at > time.time() - wait

    def resolved(self, alert: Alert) -> Decision:
        """Put a resolved alert on its incident's timeline (and rebuild a finished report)."""
        with self._cv:
            recs = [r for r in self._runs.values() if r.fingerprint == alert.fingerprint or
                    alert.fingerprint in r.attached]
            if not recs:
                return Decision("ignored", None, "no run for this alert")
            rec = max(recs, key=lambda r: r.id)
            if rec.resolved and rec.fingerprint == alert.fingerprint:
                return Decision("duplicate", rec, "already recorded as resolved")
            self._event(rec, "alert-resolved", f"{alert.describe()} resolved", alert,
                        at=alert_time(alert.ends_at))
            if rec.fingerprint == alert.fingerprint:
                rec = self._put(replace(rec, resolved=True))
            # A queued run's report will show it; a running or finished one gets its report rebuilt afterwards.
            if rec.status != "queued" and not any(j.run_id == rec.id and j.kind == "refresh" for j in self._jobs):
                self._jobs.append(_Job("refresh", rec.id))
                self._cv.notify_all()
            return Decision("resolved", rec)

    def _new_run(self, alert: Alert) -> RunRecord:
        from ..incident import new_incident_dir

        folder = new_incident_dir(self.dir, f"{alert.name}-{alert.instance}")
        write_alert(folder, alert)
        rid = max(self._runs, default=0) + 1
        rec = RunRecord(id=rid, fingerprint=alert.fingerprint, alertname=alert.name, instance=alert.instance,
                        unit=alert.unit, pid=alert.pid, starts_at=alert.starts_at, folder=str(folder))
        self._event(rec, "alert", f"{alert.describe()} firing: {alert.annotations.get('summary', '')}".rstrip(": "),
                    alert, at=alert_time(alert.starts_at))
        return self._put(rec)

    def _event(self, rec: RunRecord, kind: str, what: str, alert: Alert, *, at: datetime | None = None) -> None:
        try:
            record_event(rec.folder, kind, what, evidence="alert.json; alerts.jsonl (zcnb receiver)",
                         at=at or datetime.now(UTC))
        except OSError as exc:
            self.log(f"zcnb receiver: cannot record {kind} of {alert.describe()} in {rec.folder}: {exc}")

    # -- workers ----------------------------------------------------------------------------------
    def start(self) -> RunQueue:
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=timeout_s)

    def _next(self) -> _Job | None:
        with self._cv:
            while not self._stop:
                for i, job in enumerate(self._jobs):
                    rec = self._runs[job.run_id]
                    if rec.gateway not in self._busy:
                        self._busy.add(rec.gateway)
                        del self._jobs[i]
                        if job.kind == "run":
                            self._put(replace(rec, status="running", started_at=time.time()))
                        return job
                self._cv.wait()
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            rec = self._runs[job.run_id]
            try:
                if job.kind == "run":
                    assert job.alert is not None
                    self.log(f"zcnb receiver: run {rec.id}: {job.alert.describe()} -> {rec.folder} "
                             "(stages 01, 03 and the report)")
                    out = self.runner(Path(rec.folder), job.alert)
                else:
                    out = self.refresher(Path(rec.folder))
                err = "" if out.ok else (out.error or "failed")
                fields = {"verdict": out.verdict, "report": str(out.report) if out.report else None}
            except Exception as exc:  # noqa: BLE001  a run's failure must never stop the worker
                err, fields = f"{type(exc).__name__}: {exc}", {}
            with self._cv:
                rec = self._runs[job.run_id]
                if job.kind == "run":
                    rec = replace(rec, status="done" if not err else "failed", finished_at=time.time(), error=err,
                                  verdict=fields.get("verdict"), report=fields.get("report"))
                elif fields.get("report"):
                    rec = replace(rec, report=fields["report"])
                self._put(rec)
                self._busy.discard(rec.gateway)
                self._cv.notify_all()
            self.log(f"zcnb receiver: run {rec.id} {'report rebuilt' if job.kind == 'refresh' else rec.status}: "
                     f"verdict {rec.verdict or '?'}; report {rec.report or '(none)'}" + (f"; {err}" if err else ""))
