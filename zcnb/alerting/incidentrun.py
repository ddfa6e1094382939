"""What the receiver does for one leak alert: collect, then run the non-destructive stages headless.

1. ``samples.csv``: the exporter's series of the alerted gateway (RSS, USS, PSS, cgroup; every pid, so
   restarts show) for the last ``history`` from Prometheus: the history the alert was raised on.
2. ``journal.jsonl``: the gateway's log for the same window (the unit's journal, redacted), or the last
   ``max_log_bytes`` of its log file for a gateway not under systemd (no timestamps: said on the timeline).
3. ``zcnb report --incident-dir FOLDER --stages 01,03`` in a child process (papermill, one process for all
   stages, then the report, stage 05): stage 01 assesses the samples (the cgroup's memory.max as the limit
   when known), stage 03 counts skills, tools and errors. Stages 02, 04 and 06 (restart, restore, rollback)
   are never run. A child process keeps a failing or slow run from taking the receiver down, and its memory
   is returned when it ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigError, ZcnbError
from .alerts import Alert, record_event
from ..monitor.targets import GatewayTarget

__all__ = ["RunConfig", "RunOutcome", "collect_logs", "collect_samples", "prometheus_base", "run_alert",
           "refresh_report"]

NON_DESTRUCTIVE_STAGES = ("01", "03")  # plus the report (05), which always runs last
_SERIES = (("rss_bytes", "zcnb_gateway_resident_memory_bytes"), ("uss_bytes", "zcnb_gateway_unique_memory_bytes"),
           ("pss_bytes", "zcnb_gateway_proportional_memory_bytes"), ("cgroup_bytes", "zcnb_gateway_cgroup_memory_bytes"))


@dataclass(frozen=True)
class RunConfig:
    """Where the receiver's runs get their data and put their incidents."""

    incidents_dir: Path
    prometheus_url: str | None = None  # None: the alert's generatorURL's server
    history_s: float = 3600.0
    step: str = "15s"
    targets: tuple[GatewayTarget, ...] = field(default_factory=tuple)
    max_log_bytes: int = 32 << 20
    stage_timeout_s: float = 600.0
    python: str = sys.executable


@dataclass(frozen=True)
class RunOutcome:
    """What one run produced."""

    ok: bool
    verdict: str | None
    report: Path | None
    error: str = ""


def prometheus_base(alert: Alert, configured: str | None) -> str:
    """The Prometheus server to read: the configured one, else the origin of the alert's ``generatorURL``."""
    from ..collect.prometheus import check_url

    if configured:
        return check_url(configured)
    gen = alert.generator_url
    if not gen:
        raise ConfigError("the alert has no generatorURL and no Prometheus URL is configured",
                          hint="start the receiver with --prometheus-url http://127.0.0.1:9090")
    parts = urlsplit(gen)
    prefix = parts.path.rsplit("/graph", 1)[0] if "/graph" in parts.path else ""
    return check_url(f"{parts.scheme}://{parts.netloc}{prefix}")


def _matcher(alert: Alert) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    if not alert.instance:
        raise ConfigError(f"alert {alert.name} has no instance label",
                          hint="use the rules of `zcnb alert-rules` on the exporter's series (scrape with honor_labels)")
    return f'{{instance="{esc(alert.instance)}",unit="{esc(alert.unit)}"}}'


def collect_samples(folder: Path, alert: Alert, cfg: RunConfig, *, now: float | None = None) -> tuple[int, int | None]:
    """Write ``samples.csv`` from Prometheus; returns (sample rows, the last memory.max seen or None)."""
    from ..collect.prometheus import query_instant, query_range

    base = prometheus_base(alert, cfg.prometheus_url)
    end = time.time() if now is None else now
    start = end - cfg.history_s
    sel = _matcher(alert)
    merged = None
    for column, metric in _SERIES:
        # instance_label="pid": one series per process, keyed by its pid
        df = query_range(base, metric + sel, start=start, end=end, step=cfg.step, instance_label="pid",
                         value_column=column)[["instance", "timestamp", column]]
        merged = df if merged is None else merged.merge(df, on=["instance", "timestamp"], how="outer")
    assert merged is not None
    merged = _one_process_at_a_time(merged.sort_values("timestamp", kind="stable"))
    if merged.empty or merged["rss_bytes"].notna().sum() == 0:
        raise ZcnbError(f"Prometheus at {base} has no zcnb_gateway_resident_memory_bytes{sel} in the last "
                        f"{cfg.history_s:g} s", hint="is `zcnb exporter` scraped (job with honor_labels: true)?")
    header = [f"# target: instance={alert.instance} unit={alert.unit} (zcnb exporter series from Prometheus {base})",
              f"# sources: prometheus   interval_s: {_step_s(cfg.step):g}   "
              f"started: {datetime.fromtimestamp(start, UTC).isoformat()}"]
    _write_samples(folder / "samples.csv", merged, header)
    limits = query_instant(base, f"max(zcnb_gateway_cgroup_memory_max_bytes{sel})", at=end)
    limit = int(next(iter(limits.values()))) if limits else None
    return len(merged), limit


def _write_samples(path: Path, merged: Any, header: list[str]) -> None:
    """The samples CSV (docs/CONTRACTS.md); a pid change is a ``restart`` row."""
    import pandas as pd

    from ..files import write_private
    from ..collect.samples_csv import COLUMNS, Sample

    lines = ["# zcnb samples v1", *header, ",".join(COLUMNS)]
    prev: int | None = None
    for row in merged.itertuples(index=False):
        pid = int(row.instance) if str(row.instance).isdigit() else None
        event, note = ("restart", f"pid {prev} -> {pid}") if prev is not None and pid not in (None, prev) else ("", "")
        prev = pid if pid is not None else prev
        vals = {c: (None if pd.isna(getattr(row, c)) else int(getattr(row, c))) for c, _m in _SERIES}
        lines.append(Sample(row.timestamp.to_pydatetime(), pid, "prometheus", **vals, event=event,
                            note=note).csv_line().rstrip("\n"))
    write_private(path, "\n".join(lines) + "\n")


def _one_process_at_a_time(df: Any) -> Any:
    """Drop a process's points from the moment its successor appears.

    A range query repeats a series' last value for up to 5 minutes (Prometheus's lookback) unless the series was
    marked stale; without this, the old and the new pid would alternate row by row after a restart.
    """
    firsts = df.groupby("instance", sort=False)["timestamp"].min().sort_values()
    ends = dict(zip(firsts.index, firsts.iloc[1:].tolist()))  # the last process has no end
    keep = [key not in ends or ts < ends[key] for ts, key in zip(df["timestamp"], df["instance"])]
    return df[keep]


def _step_s(step: str) -> float:
    from ..units import parse_duration

    return parse_duration(step)


def _entry_json(e: Any) -> str:
    import json

    obj: dict[str, Any] = {"MESSAGE": e.message}
    if e.timestamp is not None:
        obj["__REALTIME_TIMESTAMP"] = str(int(e.timestamp.timestamp() * 1_000_000))
    for key, value in (("_PID", e.pid), ("_SYSTEMD_USER_UNIT", e.unit), ("SYSLOG_IDENTIFIER", e.identifier),
                       ("PRIORITY", e.priority)):
        if value is not None:
            obj[key] = str(value)
    return json.dumps(obj, sort_keys=True)


def _tail_lines(path: str, max_bytes: int) -> tuple[list[str], bool]:
    """The last ``max_bytes`` of a log file as lines, and whether its start was cut off."""
    from ..files import open_input

    with open_input(path, what="log file", error=ZcnbError, hint="check the receiver's --gateway log_file=") as fh:
        try:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - max_bytes))
            data = fh.read(max_bytes)
        except OSError as exc:
            raise ZcnbError(f"cannot read log file {path}: {exc.strerror or exc}", path=path) from None
    cut = size > max_bytes
    lines = data.split(b"\n")
    if cut:
        lines = lines[1:]  # the first line was cut in the middle
    return [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in lines if ln.strip()], cut


def collect_logs(folder: Path, alert: Alert, cfg: RunConfig, *, since: float, until: float) -> str:
    """Write ``journal.jsonl`` (redacted) for the alerted gateway; returns what was collected, for the timeline."""
    from ..files import write_private
    from ..logs.journal import read_journal
    from ..logs.message import make_entry
    from ..redact import default_redactor

    target = next((t for t in cfg.targets if t.instance == alert.instance), None)
    unit = alert.unit or (target.unit if target else None)
    red = default_redactor()
    if target is not None and target.log_file:
        lines, cut = _tail_lines(target.log_file, cfg.max_log_bytes)
        entries = [make_entry(ln, redact=red) for ln in lines]
        what = (f"logs: {len(entries)} lines of {target.log_file}" + (f" (its last {cfg.max_log_bytes} bytes)" if cut else "")
                + "; the file has no timestamps, so its counts cover the whole file, not only the alert window, "
                  "and activity cannot be correlated with memory")
    elif unit:
        files = target.journal_files if target else ()
        directory = target.journal_dir if target else None
        entries = list(read_journal(unit, since=since, until=until, files=files or None, directory=directory,
                                    redact=red, require_entries=False))
        where = " ".join(files) or directory or "the journal"
        what = f"logs: {len(entries)} entries of {unit} from {where}, same window as the samples"
    else:
        write_private(folder / "journal.jsonl", "")
        return "logs: none (the alert has no unit label and no --gateway names a log file for this instance)"
    write_private(folder / "journal.jsonl", "".join(_entry_json(e) + "\n" for e in entries))
    return what


def _report_cmd(cfg: RunConfig, folder: Path, stages: str, params: dict[str, Any]) -> list[str]:
    import json

    argv = [cfg.python, "-m", "zcnb", "report", "--incident-dir", str(folder), "--stages", stages, "--no-progress"]
    for key, value in params.items():
        argv += ["-p", f"{key}={json.dumps(value)}"]
    return argv


def _run_child(argv: list[str], *, timeout_s: float) -> tuple[int | None, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, f"timed out after {timeout_s:g} s"
    return proc.returncode, out.decode("utf-8", "replace")[-2000:]


def _outcome(folder: Path, rc: int | None, out: str) -> RunOutcome:
    from ..files import read_json

    summary: dict[str, Any] = {}
    if (folder / "summary.json").is_file():
        try:
            summary = read_json(folder / "summary.json")
        except (OSError, ValueError):
            summary = {}
    verdict = (summary.get("assessment") or {}).get("verdict")
    report = folder / "report.html"
    failed = ", ".join(summary.get("failed_stages") or [])
    tail = out.strip().splitlines()
    error = ""
    if rc != 0:
        error = f"failed stages: {failed}" if failed else (tail[-1][:300] if tail else f"exit {rc}")
    return RunOutcome(ok=rc == 0, verdict=verdict, report=report if report.is_file() else None, error=error)


def run_alert(folder: Path, alert: Alert, cfg: RunConfig) -> RunOutcome:
    """Collect the alerted gateway's data into ``folder`` and run stages 01 and 03, then the report."""
    end = time.time()
    try:
        rows, limit = collect_samples(folder, alert, cfg, now=end)
        record_event(folder, "collected", f"samples: {rows} points of the exporter's series from Prometheus over "
                     f"the last {cfg.history_s:g} s" + (f"; cgroup memory.max {limit} bytes" if limit else ""),
                     evidence="samples.csv")
        what = collect_logs(folder, alert, cfg, since=end - cfg.history_s, until=end)
        record_event(folder, "collected", what, evidence="journal.jsonl")
    except ZcnbError as exc:
        record_event(folder, "collected", f"collection failed: {exc}")
        return RunOutcome(ok=False, verdict=None, report=None, error=str(exc))
    params: dict[str, Any] = {"03.unit": alert.unit or ""}
    if limit:
        params["01.limit_bytes"] = limit
    rc, out = _run_child(_report_cmd(cfg, folder, ",".join(NON_DESTRUCTIVE_STAGES), params),
                         timeout_s=cfg.stage_timeout_s * 4)
    _write_index(cfg.incidents_dir)
    return _outcome(folder, rc, out)


def refresh_report(folder: Path, cfg: RunConfig) -> RunOutcome:
    """Run only the report again (after an event was added to the timeline); the stages' results stay."""
    rc, out = _run_child(_report_cmd(cfg, folder, "", {}), timeout_s=cfg.stage_timeout_s)
    _write_index(cfg.incidents_dir)
    return _outcome(folder, rc, out)


def _write_index(base: Path) -> None:
    from ..report.export import write_index

    try:
        write_index(base)
    except ZcnbError:
        pass  # an index.html zcnb did not write is left alone; the status page lists the runs anyway
