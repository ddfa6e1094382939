"""The sampler: fixed-rate memory samples of the gateway into an append-only CSV.

Tick ``k`` is due at ``start + k * interval`` on ``time.monotonic()``; a tick that
is already a whole interval late is skipped and counted (the next row says so).
Timestamps come from the wall clock at sample time, so a clock jump shows in the
data honestly while the rate stays fixed. Each row is one ``os.write`` of a whole
line (O_APPEND), so a killed sampler loses at most the row being written.
/metrics is scraped by a background thread no faster than ``metrics_interval_s``
(the real gateway allows 100 requests/60 s per token, shared with other clients), and only when the
gateway's shared request budget (:mod:`zcnb.collect.budget`) has a slot for background polling: otherwise
the thread waits for one, and the run says how often it had to.
Scraping stops for good (one ``gap`` row says why) when /metrics has no memory metrics,
after the first 401/403 (no or invalid token: on the real gateway every token-less
request leaks memory), and never starts without a token unless ``unauth_metrics=True``.
psutil/cgroup sampling goes on in every case.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..config import NO_TOKEN_LEAK, Secret
from ..exceptions import ConfigError, EndpointAuthError, OutputWriteError, ProcessAccessDenied, TargetError, ZcnbError
from ..units import format_bytes
from .budget import RequestBudget, budget_for_url
from .memlimit import MemoryLimit, detect_limit
from .metrics import MetricsClient, parse_metrics
from .process import MemoryReading, ProcessInfo, ProcessQuery, find_by_query, read_memory
from .samples_csv import COLUMNS, Sample, SamplesFile, finite_or_none, read_samples

__all__ = ["SOURCES", "Sample", "Sampler", "SamplingSummary", "read_samples", "sample"]

SOURCES = ("psutil", "metrics", "cgroup")
MIN_INTERVAL_S = 0.1


@dataclass(frozen=True)
class MetricsResult:
    """What the metrics thread hands the sampler: values or a gap reason."""

    rss: int | None = None
    vms: int | None = None
    error: str = ""
    final: bool = False  # scraping stops after this result (no memory metrics, 401/403, no token)


@dataclass(frozen=True)
class SamplingSummary:
    """What a sampling run did."""

    path: str
    samples: int
    gaps: int
    restarts: int
    missed_ticks: int
    pids: tuple[int, ...]
    started: str
    ended: str
    stopped_by: str  # "duration" | "max_samples" | "interrupt" | "stop" | "error"
    sources: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pids"], d["sources"], d["notes"] = list(self.pids), list(self.sources), list(self.notes)
        return d

    def _repr_markdown_(self) -> str:
        lines = [(f"**Sampling** `{self.path}`: {self.samples} samples, {self.gaps} gaps, {self.restarts} restarts, "
                  f"{self.missed_ticks} missed ticks; sources {'+'.join(self.sources)}; stopped by {self.stopped_by}"),
                 "", f"{self.started} -> {self.ended}; pids {', '.join(map(str, self.pids)) or '-'}"]
        return "\n".join(lines + [f"- {n}" for n in self.notes])


@dataclass(slots=True)
class _Run:
    """What one :meth:`Sampler.run` keeps between ticks."""

    metrics_off: bool = False  # scraping stopped for good (no memory metrics, 401/403, no token)
    said_off_row: bool = False  # the gap row saying so was written
    proc: ProcessInfo | None = None
    counts: dict[str, int] = field(default_factory=dict)  # rows by event ("sample" for plain samples)
    pids: list[int] = field(default_factory=list)
    ticks: int = 0
    missed: int = 0
    pending_missed: int = 0  # missed ticks not yet noted on a row
    next_scrape: float = 0.0  # inline scraping (no metrics thread): when the next scrape is due
    stopped_by: str = "stop"


def _safe_url(url: str) -> str:
    """The URL without user info or query string (either could hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _now() -> datetime:
    return datetime.now().astimezone()


class Sampler:
    """Samples one target at a fixed rate into ``out`` (see module docstring)."""

    def __init__(self, out: str | os.PathLike[str], *, query: ProcessQuery | None = None, url: str | None = None,
                 token: Secret | None = None, sources: Sequence[str] = ("psutil",), interval_s: float = 30.0,
                 duration_s: float | None = 3600.0, max_samples: int | None = None, metrics_interval_s: float = 10.0,
                 timeout_s: float = 5.0, fsync: bool = False, append: bool = False, progress: bool = True,
                 uss_pss: bool = True, unauth_metrics: bool = False, token_hint: str = "",
                 metrics_in_thread: bool = True, monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = _now, wait: Callable[[float], bool] | None = None,
                 reader: Callable[[int], MemoryReading] | None = None,
                 finder: Callable[[], ProcessInfo] | None = None,
                 metrics_fetcher: Callable[[], str] | None = None,
                 writer: Callable[[int, bytes], int] = os.write,
                 tick_hook: Callable[[int, float], None] | None = None,
                 budget: RequestBudget | None = None,
                 memory_limit: MemoryLimit | None = None) -> None:
        srcs = tuple(dict.fromkeys(s.strip() for s in sources if s.strip()))
        unknown = [s for s in srcs if s not in SOURCES]
        if not srcs or unknown:
            raise ConfigError(f"unknown or no memory sources {unknown or list(sources)}",
                              hint=f"choose from {', '.join(SOURCES)}")
        if not interval_s >= MIN_INTERVAL_S:
            raise ConfigError(f"interval {interval_s} s is too short", hint=f"use an interval >= {MIN_INTERVAL_S} s")
        if not metrics_interval_s >= MIN_INTERVAL_S:
            raise ConfigError(f"metrics interval {metrics_interval_s} s is too short",
                              hint=f"use >= {MIN_INTERVAL_S} s (10 s default; the gateway allows 100 requests/60 s)")
        if duration_s is not None and not duration_s > 0 or max_samples is not None and max_samples < 1:
            raise ConfigError("duration_s and max_samples must be positive", hint="e.g. duration_s=3600")
        needs_process = bool({"psutil", "cgroup"} & set(srcs))
        if needs_process and query is None and finder is None:
            raise ConfigError("sources psutil/cgroup need a process", hint="give pid, pid_file, unit or pattern")
        if "metrics" in srcs and url is None and metrics_fetcher is None:
            raise ConfigError("source 'metrics' needs the gateway URL", hint="give url=http://127.0.0.1:18789")
        self.out = Path(out)
        self.query, self.sources, self.interval_s = query, srcs, float(interval_s)
        self.duration_s, self.max_samples, self.metrics_interval_s = duration_s, max_samples, float(metrics_interval_s)
        self.fsync, self.append, self.progress = fsync, append, progress
        self.uss_pss = uss_pss  # smaps_rollup costs ~0.5 ms of kernel time per 40 MiB of RSS; statm ~20 us
        self._url = _safe_url(url) if url else None
        self._budget: RequestBudget | None = None
        self._client: MetricsClient | None = None
        if url and metrics_fetcher is None and "metrics" in srcs:
            self._budget = budget or budget_for_url(url)
            # background: polling leaves a quarter of the budget to interactive zcnb commands
            self._client = MetricsClient(url, token=token, timeout_s=timeout_s, budget=self._budget,
                                         background=True, caller="sample", budget_wait_s=timeout_s)
        self._throttled = 0  # scrapes that had to wait for the request budget
        self._throttle_said = False
        self._strict = False  # once a process named by the pattern was found, never settle for a mention
        # No token and no explicit opt-in: not a single token-less /metrics request (each leaks on the real gateway).
        self._no_token = "metrics" in srcs and metrics_fetcher is None and not token and not unauth_metrics
        self._token_hint = token_hint or "set the gateway token (env var named by token_env, or token_file)"
        self._fetch_text = metrics_fetcher or (lambda: self._client.fetch().text)  # type: ignore[union-attr]
        self._metrics_in_thread = metrics_in_thread
        self._mono, self._wall, self._tick_hook = monotonic, wall_clock, tick_hook
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._finder = finder or self._find
        self._reader = reader
        self._psutil_proc: Any = None
        self._results: queue.SimpleQueue[MetricsResult] = queue.SimpleQueue()
        self._notes: list[str] = []
        self._first_gap = ""  # reason of the first process gap row (said when no sample is taken at all)
        self._file = SamplesFile(self.out, append=append, fsync=fsync, writer=writer)
        self._started = ""
        self._chosen = ""  # which process, and why, for the header
        self._first_proc: ProcessInfo | None = None
        self._limit = memory_limit  # None: detected when the file is opened (zcnb.collect.memlimit)

    def stop(self) -> None:
        """Ask a running :meth:`run` to stop after the current tick (thread-safe)."""
        self._stop.set()

    def _find(self) -> ProcessInfo:
        if self.query is None:
            raise ConfigError("no process to find", hint="give pid, pid_file, unit or pattern")
        query = replace(self.query, exe_match_only=True) if self._strict else self.query
        info = find_by_query(query)
        if info.match in ("executable", "argv[0]"):
            self._strict = True  # a restart gap must not hand the sampler a process that only mentions the name
        return info

    def _wait_for_budget(self) -> bool:
        """Wait (stop-aware) until the request budget has a slot for a background scrape; False when stopped."""
        if self._budget is None:
            return not self._stop.is_set()
        while not self._stop.is_set():
            try:
                wait = self._budget.next_free_s(background=True)
            except ZcnbError:
                return True  # the scrape itself reports the ledger's problem
            if wait <= 0:
                return True
            self._throttled += 1
            self._stop.wait(wait)
        return False

    # -- metrics -------------------------------------------------------------------------------------------
    def _scrape(self) -> MetricsResult:
        try:
            ms = parse_metrics(self._fetch_text())
        except TargetError as exc:
            reason = getattr(exc, "reason", "")
            if isinstance(exc, EndpointAuthError) or reason in ("401", "http 401", "http 403"):
                code = "403" if reason == "http 403" else "401"
                return MetricsResult(error=f"{code}: {exc.message}: no or invalid token, stopped scraping /metrics "
                                           f"({NO_TOKEN_LEAK}); {self._token_hint}", final=True)
            return MetricsResult(error=f"{getattr(exc, 'reason', '') or type(exc).__name__}: {exc.message}")
        except ZcnbError as exc:
            return MetricsResult(error=f"bad /metrics body: {exc.message[:160]}")
        rss, vms = ms.get("process_resident_memory_bytes"), ms.get("process_virtual_memory_bytes")
        if rss is None:
            rss = ms.get("memory_usage_bytes")
        if rss is None and vms is None:
            return MetricsResult(error="no memory metrics: /metrics has no process_resident_memory_bytes "
                                       "(real gateway?); memory comes from the other sources", final=True)
        return MetricsResult(rss=finite_or_none(rss), vms=finite_or_none(vms))

    def _metrics_loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._stop.wait(max(0.0, next_at + self.metrics_interval_s - time.monotonic()))
            if self._stop.is_set() or not self._wait_for_budget():
                return
            result = self._scrape()
            self._results.put(result)
            if result.final:
                return  # no memory metrics (keep the shared rate-limit budget) or 401/403 (each retry would leak)
            next_at = max(next_at + self.metrics_interval_s, time.monotonic() - self.metrics_interval_s)

    # -- output --------------------------------------------------------------------------------------------
    def _open(self) -> None:
        """Open the CSV (see :class:`SamplesFile`) and write this run's header block."""
        exists, repaired = self._file.open()
        self._notes += repaired
        target = self.query.describe() if self.query else "custom"
        started = self._started = self._wall().isoformat(timespec="seconds")
        head = [] if exists else ["# zcnb samples v1"]
        head += [f"# target: {target}" + (f" url={self._url}" if self._url else ""),
                 (f"# sources: {','.join(self.sources)}   interval_s: {self.interval_s:g}   "
                  f"metrics_interval_s: {self.metrics_interval_s:g}   started: {started}")]
        if self._chosen:
            head.append(f"# process: {self._chosen}")
        if self._budget is not None:
            b = self._budget
            head.append(f"# request_budget: {b.key} {b.limit} per {b.window_s:g} s for all zcnb processes, polling "
                        f"at most {b.limit - b.reserve}; ledger {b.path}")
        head.append(self._memory_limit().header_line())
        head += [f"# note: {n}" for n in self._notes]
        if not exists:
            head.append(",".join(COLUMNS))
        self._file.write("\n".join(head) + "\n")

    def _memory_limit(self) -> MemoryLimit:
        """The target's memory ceiling for the header: given, else detected (MemoryMax, cgroup, MemTotal)."""
        if self._limit is not None:
            return self._limit
        local = bool({"psutil", "cgroup"} & set(self.sources))
        if not local and self._url:
            host = urlsplit(self._url).hostname or ""
            local = host in ("127.0.0.1", "localhost", "::1")
        pid = None
        if local and self.query is not None and {"psutil", "cgroup"} & set(self.sources):
            try:  # a lookup of its own: the tick loop's finder keeps its own state
                pid = self.query.pid or find_by_query(self.query).pid
            except (ZcnbError, OSError):
                pid = None
        unit = self.query.unit if self.query is not None else None
        self._limit = detect_limit(pid, unit=unit, local=local)
        return self._limit

    def _row(self, counts: dict[str, int], **kw: Any) -> Sample:
        kw.setdefault("timestamp", self._wall())
        kw["note"] = str(kw.get("note", "")).replace("\n", " ").replace("\r", " ")
        row = Sample(**kw)
        self._file.write(row.csv_line())
        key = kw.get("event") or "sample"
        counts[key] = counts.get(key, 0) + 1
        return row

    # -- one tick ------------------------------------------------------------------------------------------
    def _measure(self, proc: ProcessInfo | None) -> tuple[ProcessInfo | None, MemoryReading | None, str]:
        """(process, reading, gap reason); finds the process again (once per tick) when it is gone."""
        import psutil

        needs = {"psutil", "cgroup"} & set(self.sources)
        if not needs:
            return None, None, ""
        gone = ""
        for _ in (0, 1):
            if proc is None:
                try:
                    proc = self._finder()
                    self._psutil_proc = None
                except TargetError as exc:
                    return None, None, gone or f"process not found: {exc.message}"
            try:
                if self._reader is not None:
                    return proc, self._reader(proc.pid), ""
                if self._psutil_proc is None:
                    self._psutil_proc = psutil.Process(proc.pid)
                return proc, read_memory(proc.pid, process=self._psutil_proc, full=self.uss_pss and "psutil" in needs,
                                         cgroup="cgroup" in needs), ""
            except ProcessAccessDenied as exc:
                return proc, None, f"access denied: {exc.message}"
            except (TargetError, psutil.Error):
                gone = f"process gone (pid {proc.pid})"
                proc, self._psutil_proc = None, None
        return None, None, gone

    def run(self) -> SamplingSummary:
        """Sample until duration/max_samples/stop()/Ctrl-C; returns the summary. Data is kept in every case."""
        first = self._first_scrape()  # before the header, so the header can say what /metrics offers
        self._chosen = self._choose()
        self._open()
        run = _Run(metrics_off=first is not None and first.final, proc=self._first_proc)  # final: no more /metrics
        bar = self._progress_bar()
        poller = self._start_metrics_thread(run)
        try:
            run.stopped_by = self._tick_loop(run, bar)
        except KeyboardInterrupt:
            run.stopped_by = "interrupt"
        except OutputWriteError:
            run.stopped_by = "error"
            raise
        finally:
            self._finish(run, bar, poller)
        return self._summary(run)

    # -- the run's steps -----------------------------------------------------------------------------------
    def _first_scrape(self) -> MetricsResult | None:
        """The first /metrics result (or why there is none); refuses when /metrics is the only source and fails."""
        if "metrics" not in self.sources:
            return None
        if self._no_token:
            first = MetricsResult(error=f"no token configured: not scraping /metrics ({NO_TOKEN_LEAK}); "
                                        f"{self._token_hint}, or opt in with unauth_metrics=True "
                                        "(--unauth-metrics) for a gateway that serves /metrics openly",
                                  final=True)
        else:
            first = self._scrape()
        if first.final and self.sources == ("metrics",):
            if first.error.startswith("no memory metrics"):
                raise ConfigError(f"{self._url} exports no memory metrics, and 'metrics' is the only source",
                                  hint="add --sources psutil (the process) or cgroup")
            raise ConfigError(f"/metrics cannot be sampled and 'metrics' is the only source: {first.error}",
                              hint=f"{self._token_hint}, or add --sources psutil (the process) or cgroup")
        self._notes.append(f"metrics: {first.error}" if first.error else "metrics: exports process memory metrics")
        self._results.put(first)
        return first

    def _choose(self) -> str:
        """Find the process once before the header, which then says which one was chosen and why."""
        if not {"psutil", "cgroup"} & set(self.sources) or self.query is None or self._finder != self._find:
            return ""  # a caller's own finder: its first tick finds the process
        try:
            self._first_proc = self._find()
        except TargetError as exc:
            return f"none yet ({exc.message.splitlines()[0]})"
        return self._first_proc.describe()

    def _progress_bar(self) -> Any:
        from tqdm.auto import tqdm

        total = None
        if self.duration_s is not None:
            total = max(1, int(-(-self.duration_s // self.interval_s)))
        if self.max_samples is not None:
            total = min(total or self.max_samples, self.max_samples)
        return tqdm(total=total, disable=not self.progress, unit="sample", desc="sampling", leave=True)

    def _start_metrics_thread(self, run: _Run) -> threading.Thread | None:
        if "metrics" not in self.sources or not self._metrics_in_thread or run.metrics_off:
            return None
        poller = threading.Thread(target=self._metrics_loop, name="zcnb-metrics", daemon=True)
        poller.start()
        return poller

    def _tick_loop(self, run: _Run, bar: Any) -> str:
        """Tick ``k`` at ``start + k * interval`` until a limit or stop(); returns what stopped it."""
        start = self._mono()
        run.next_scrape = start + self.metrics_interval_s
        k = 0
        while True:
            if self.duration_s is not None and k * self.interval_s >= self.duration_s:
                return "duration"
            if self.max_samples is not None and run.ticks >= self.max_samples:
                return "max_samples"
            due = start + k * self.interval_s
            now = self._mono()
            if now < due:
                if self._wait(due - now):
                    return "stop"
                now = self._mono()
            if self._stop.is_set():
                return "stop"
            if self._tick_hook is not None:
                self._tick_hook(k, now - due)
            run.ticks += 1
            self._tick(run, now, bar)
            bar.update(1)
            # next tick = the first one still in the future: ticks that passed while this one ran are
            # skipped and counted, never made up in a burst
            nxt = max(k + 1, int((self._mono() - start) // self.interval_s) + 1)
            run.missed += nxt - k - 1
            run.pending_missed += nxt - k - 1
            k = nxt

    def _tick(self, run: _Run, now: float, bar: Any) -> None:
        """One tick: the /metrics results so far, one process reading, then a gap row or a sample row."""
        results = self._metrics_results(run, now)
        prev_pid = run.proc.pid if run.proc else None
        run.proc, reading, reason = self._measure(run.proc)
        self._metrics_gap_rows(run, results)
        ok = [r for r in results if not r.error]
        m = ok[-1] if ok else None
        if reading is None and m is None:
            if reason:
                self._first_gap = self._first_gap or reason
                self._row(run.counts, pid=prev_pid, event="gap", note=reason)
            return
        row = self._sample_row(run, reading, m, reason)
        if row.rss_bytes is not None:
            bar.set_postfix_str(f"rss {format_bytes(row.rss_bytes, unit='MiB')}", refresh=False)

    def _metrics_results(self, run: _Run, now: float) -> list[MetricsResult]:
        """Drain what the metrics thread scraped, or scrape inline when it is due."""
        results: list[MetricsResult] = []
        if "metrics" in self.sources:
            while not self._results.empty():
                results.append(self._results.get_nowait())
            if not self._metrics_in_thread and now >= run.next_scrape and not run.metrics_off:
                wait = self._budget.next_free_s(background=True) if self._budget is not None else 0.0
                if wait > 0:
                    self._throttled += 1  # no slot now: skip this scrape, try at the next due tick
                else:
                    results.append(self._scrape())
                run.next_scrape = max(run.next_scrape + self.metrics_interval_s, now)
        return results

    def _metrics_gap_rows(self, run: _Run, results: list[MetricsResult]) -> None:
        """A gap row per failed scrape; once only when scraping stops for good."""
        pid = run.proc.pid if run.proc else None
        for r in results:
            if r.final:
                run.metrics_off = True
                if not run.said_off_row:  # once is enough: scraping has stopped
                    run.said_off_row = True
                    self._row(run.counts, pid=pid, source="metrics", event="gap", note=f"metrics: {r.error}")
                    if f"metrics: {r.error}" not in self._notes:
                        self._notes.append(f"metrics: {r.error}")
            elif r.error:
                self._row(run.counts, pid=pid, source="metrics", event="gap", note=f"metrics: {r.error}")

    def _sample_row(self, run: _Run, reading: MemoryReading | None, m: MetricsResult | None, reason: str) -> Sample:
        """The measured values, their sources, and a start/restart event when the pid is new."""
        srcs = []
        kw: dict[str, Any] = {}
        if reading is not None:
            if "psutil" in self.sources:
                srcs.append("psutil")
                kw.update(rss_bytes=reading.rss_bytes, vms_bytes=reading.vms_bytes, uss_bytes=reading.uss_bytes,
                          pss_bytes=reading.pss_bytes)
            if "cgroup" in self.sources and reading.cgroup_bytes is not None:
                srcs.append("cgroup")
                kw["cgroup_bytes"] = reading.cgroup_bytes
        if m is not None:
            srcs.append("metrics")
            kw.update(metrics_rss_bytes=m.rss, metrics_vms_bytes=m.vms)
        notes = []
        event = ""
        pid = run.proc.pid if run.proc else None
        if pid is not None and pid not in run.pids:
            event = "restart" if run.pids else "start"
            if run.pids:
                notes.append(f"pid {run.pids[-1]} -> {pid}")
                why = getattr(run.proc, "reason", "") if run.proc is not None else ""
                if why:
                    notes.append(f"chosen: {why}")
            run.pids.append(pid)
        elif not run.pids and run.counts.get("start", 0) == 0:
            event = "start"
        if reading is not None and reading.notes and event in ("start", "restart"):
            notes.extend(reading.notes)
        if reason:
            notes.append(reason)
        if run.pending_missed:
            notes.append(f"skipped {run.pending_missed} missed tick(s)")
            run.pending_missed = 0
        if self._throttled and not self._throttle_said:
            self._throttle_said = True
            notes.append(self._throttle_note())
        return self._row(run.counts, pid=pid, source="+".join(srcs), event=event, note="; ".join(notes), **kw)

    def _finish(self, run: _Run, bar: Any, poller: threading.Thread | None) -> None:
        """Stop the metrics thread and the bar; end the file with a ``stop`` row (unless writing failed)."""
        self._stop.set()
        if poller is not None:
            poller.join(timeout=1.0)
        if run.stopped_by == "stop" and bar.total and bar.n < bar.total:
            bar.total = bar.n  # stopped as planned by the caller: the run is complete, the bar says 100 %
            bar.refresh()
        bar.close()
        if self._file.is_open:
            if run.stopped_by != "error":
                try:
                    self._row(run.counts, event="stop", note=run.stopped_by)
                except OutputWriteError:
                    run.stopped_by = "error"
            self._file.close()

    def _throttle_note(self) -> str:
        b = self._budget
        where = f" of {b.key} ({b.limit} per {b.window_s:g} s shared by every zcnb process, polling at most " \
                f"{b.limit - b.reserve})" if b is not None else ""
        return (f"metrics: {self._throttled} scrape(s) waited for the request budget{where}: /metrics was scraped "
                f"less often than every {self.metrics_interval_s:g} s")

    def _summary(self, run: _Run) -> SamplingSummary:
        if self._throttled:
            self._notes.append(self._throttle_note())
        measured = sum(v for key, v in run.counts.items() if key in ("sample", "start", "restart"))
        if not measured and self._first_gap:
            self._notes.append(f"no memory sample was taken: {self._first_gap}")
        return SamplingSummary(path=str(self.out), samples=measured, gaps=run.counts.get("gap", 0),
                               restarts=run.counts.get("restart", 0), missed_ticks=run.missed, pids=tuple(run.pids),
                               started=self._started, ended=self._wall().isoformat(timespec="seconds"),
                               stopped_by=run.stopped_by, sources=self.sources, notes=tuple(self._notes))


def sample(out: str | os.PathLike[str], *, pid: int | None = None, pid_file: str | None = None,
           unit: str | None = None, pattern: str | None = None, exclude_children: bool = True,
           **options: Any) -> SamplingSummary:
    """Build a :class:`Sampler` for the process given by pid/pid_file/unit/pattern and run it."""
    query = None
    if any(v is not None for v in (pid, pid_file, unit, pattern)):
        query = ProcessQuery(pid=pid, pid_file=str(pid_file) if pid_file else None, unit=unit, pattern=pattern,
                             exclude_children=exclude_children)
    return Sampler(out, query=query, **options).run()
