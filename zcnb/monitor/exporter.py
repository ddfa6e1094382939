"""``zcnb exporter``: per-gateway memory, restarts, fds and log counters for Prometheus.

It reads ``/proc``, the unit's cgroup and the gateway's log (journal or file) only. It sends nothing to the
gateway: no token is needed and none of the gateway's request budget is used (the real gateway's own
``/metrics`` has no memory metric, needs the token, and crashes at its 101st request in a minute).

Series (labels ``instance``, ``unit``; process series also ``pid``)::

    zcnb_gateway_up                                1 when the process was found at this scrape
    zcnb_gateway_resident_memory_bytes             RSS            (pid)
    zcnb_gateway_unique_memory_bytes               USS            (pid; when smaps is readable)
    zcnb_gateway_proportional_memory_bytes         PSS            (pid; when smaps is readable)
    zcnb_gateway_cgroup_memory_bytes               the process's memory cgroup (pid; when not the root cgroup)
    zcnb_gateway_cgroup_memory_max_bytes           that cgroup's limit (pid; only when one is set)
    zcnb_gateway_process_start_time_seconds        (pid)
    zcnb_gateway_open_fds                          (pid)
    zcnb_gateway_restarts_total                    pid changes seen by this exporter
    zcnb_gateway_log_lines_total, _errors_total, _warnings_total, _crashes_total
    zcnb_gateway_skill_invocations_total{skill}, zcnb_gateway_tool_calls_total{tool}
    zcnb_exporter_log_source_up{source}            1 while the log source is being read
    zcnb_exporter_log_backlog_bytes                log-file bytes left for the next scrapes

Counters carry no ``pid`` label: a counter series born at 1 (every crash would start a new pid series)
is invisible to ``increase()``, so counters are per gateway and exist, at 0, from the exporter's start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil

from ..exceptions import ZcnbError
from ..redact import default_redactor
from .logcount import FileTail, JournalFollower, LogCounts
from .targets import GatewayTarget

__all__ = ["Exporter", "ExporterOptions", "GatewayCollector", "GatewayWatch", "ProcessReading"]

@dataclass(frozen=True)
class ExporterOptions:
    """How the exporter reads logs and processes."""

    log_start: str = "end"  # "end": count from now on; "all": the whole journal / file
    max_log_bytes: int = 2 << 20  # per log file per scrape (memory: a few times this, briefly)
    resolve_interval_s: float = 1.0  # least time between two searches for a process that is gone
    uss_pss: bool = True  # smaps_rollup per scrape (a few hundred µs for a small process)
    journalctl: str = "journalctl"


@dataclass(frozen=True)
class ProcessReading:
    """One scrape's reading of one gateway process."""

    pid: int
    start_time: float
    rss: int
    uss: int | None
    pss: int | None
    cgroup: int | None
    cgroup_max: int | None
    fds: int | None


class GatewayWatch:
    """One target: its current process (found again when it is gone), restarts, and log counters."""

    def __init__(self, target: GatewayTarget, options: ExporterOptions,
                 report: Callable[[str], None] | None = None) -> None:
        self.target = target
        self.options = options
        self.report = report
        self._said: dict[str, str] = {}
        self.counts = LogCounts(redact=default_redactor())  # a token logged as a skill name is no label
        self.restarts = 0
        self.error = ""
        self._proc: psutil.Process | None = None
        self._last_key: tuple[int, float] | None = None
        self._last_resolve = -1e9
        self.log: FileTail | JournalFollower | None = None
        if target.log_file:
            self.log = FileTail(target.log_file, self.counts, from_start=options.log_start == "all",
                                max_bytes=options.max_log_bytes)
        elif target.unit:
            self.log = JournalFollower(target.unit, self.counts, start=options.log_start,
                                       files=target.journal_files, directory=target.journal_dir,
                                       journalctl=options.journalctl, on_error=lambda m: self.say("log", m))

    def say(self, topic: str, text: str) -> None:
        """Report a state (a missing series and why) once, when it changes: nothing degrades silently."""
        if self._said.get(topic, "") == text:
            return
        self._said[topic] = text
        if text and self.report is not None:
            self.report(f"zcnb exporter: {self.target.instance}: {text}")

    def start(self) -> None:
        if isinstance(self.log, JournalFollower):
            self.log.start()
        elif isinstance(self.log, FileTail):
            self.log.poll()  # the first look sets the starting offset

    def stop(self) -> None:
        if isinstance(self.log, JournalFollower):
            self.log.stop()

    def _find(self) -> psutil.Process:
        from ..collect.process import find_process

        t = self.target
        info = find_process(pid=t.pid, pid_file=t.pid_file, pattern=t.pattern,
                            unit=t.unit if not (t.pid or t.pid_file or t.pattern) else None)
        p = psutil.Process(info.pid)
        p.create_time()  # cached by psutil: is_running() then compares it
        return p

    def process(self) -> psutil.Process | None:
        """The gateway process now; a different one (pid or start time) than the last one is a restart."""
        cur = self._proc
        if cur is not None and not self._still_current(cur):
            self._proc = cur = None
            self._last_resolve = -1e9  # look for its successor at once
        if cur is not None:
            return cur
        now = time.monotonic()
        if now - self._last_resolve < self.options.resolve_interval_s:
            return None
        self._last_resolve = now
        try:
            new = self._find()
            key = (new.pid, new.create_time())
        except (ZcnbError, psutil.Error) as exc:
            self.error = str(exc)
            self.say("process", f"no process (zcnb_gateway_up 0): {exc}")
            return None
        if self._last_key is not None and key != self._last_key:
            self.restarts += 1
        self._last_key, self._proc, self.error = key, new, ""
        self.say("process", f"watching pid {new.pid} (found by {self.target.find_by()})")
        return new

    def _still_current(self, p: psutil.Process) -> bool:
        if self.target.pid_file and self._pid_file_moved(p):
            return False  # the supervisor started another process
        try:
            return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def _pid_file_moved(self, p: psutil.Process) -> bool:
        """Whether the pid file names another process now (a missing or unreadable one: not moved yet)."""
        from ..files import read_input

        try:
            first = read_input(self.target.pid_file or "", what="pid file", error=ZcnbError)[:64].split()
        except ZcnbError:
            return False
        return bool(first) and first[0].isdigit() and int(first[0]) != p.pid

    def read(self, p: psutil.Process) -> ProcessReading | None:
        from ..collect.process import read_cgroup_limit, read_cgroup_memory

        try:
            with p.oneshot():
                start = p.create_time()
                if self.options.uss_pss:
                    try:
                        full = p.memory_full_info()
                        rss, uss, pss = int(full.rss), int(full.uss), getattr(full, "pss", None)
                    except psutil.AccessDenied:
                        rss, uss, pss = int(p.memory_info().rss), None, None
                        self.say("smaps", "USS and PSS not readable (access denied to smaps_rollup): those series "
                                          "are absent; run the exporter as the gateway's user")
                else:
                    rss, uss, pss = int(p.memory_info().rss), None, None
                try:
                    fds: int | None = p.num_fds()
                except psutil.AccessDenied:
                    fds = None
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        cg, _path, note = read_cgroup_memory(p.pid)
        self.say("cgroup", f"no cgroup memory series: {note}" if note else "")
        return ProcessReading(p.pid, start, rss, uss, None if pss is None else int(pss), cg,
                              read_cgroup_limit(p.pid) if cg is not None else None, fds)


_GAUGES = (
    ("resident_memory_bytes", "rss", "Resident set size of the gateway process (RSS, /proc)."),
    ("unique_memory_bytes", "uss", "Unique set size of the gateway process (USS, smaps_rollup)."),
    ("proportional_memory_bytes", "pss", "Proportional set size of the gateway process (PSS, smaps_rollup)."),
    ("cgroup_memory_bytes", "cgroup", "Memory of the gateway process's cgroup (memory.current / usage_in_bytes); "
                                      "counts child processes too."),
    ("cgroup_memory_max_bytes", "cgroup_max", "Memory limit of that cgroup (memory.max); absent when unlimited."),
    ("process_start_time_seconds", "start_time", "Start time of the gateway process, seconds since the epoch."),
    ("open_fds", "fds", "Open file descriptors of the gateway process."),
)


class GatewayCollector:
    """A prometheus-client collector over several :class:`GatewayWatch` (one scrape at a time)."""

    def __init__(self, watches: list[GatewayWatch]) -> None:
        self.watches = watches
        self._lock = threading.Lock()

    def describe(self) -> list[Any]:
        return []  # names are known only per scrape; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            readings = [(w, self._reading(w)) for w in self.watches]
            for w in self.watches:
                if isinstance(w.log, FileTail):
                    w.log.poll()
                    w.say("log", w.log.error and f"log file not read (zcnb_exporter_log_source_up 0): {w.log.error}")
        up = GaugeMetricFamily("zcnb_gateway_up", "1 when the gateway process was found at this scrape.",
                               labels=["instance", "unit"])
        gauges = {key: GaugeMetricFamily(f"zcnb_gateway_{name}", doc, labels=["instance", "unit", "pid"])
                  for name, key, doc in _GAUGES}
        for w, r in readings:
            labels = [w.target.instance, w.target.unit_label]
            up.add_metric(labels, 1.0 if r is not None else 0.0)
            if r is None:
                continue
            for _name, key, _doc in _GAUGES:
                value = getattr(r, key)
                if value is not None:
                    gauges[key].add_metric([*labels, str(r.pid)], float(value))
        yield up
        yield from gauges.values()
        yield from self._counters(CounterMetricFamily, GaugeMetricFamily)

    def _reading(self, w: GatewayWatch) -> ProcessReading | None:
        p = w.process()
        return w.read(p) if p is not None else None

    def _counters(self, counter: Any, gauge: Any) -> Iterator[Any]:
        lab = ["instance", "unit"]
        simple = {name: counter(f"zcnb_gateway_{name}", doc, labels=lab) for name, doc in (
            ("restarts", "Gateway process changes (new pid) seen by this exporter."),
            ("log_lines", "Gateway log lines read."),
            ("errors", "Gateway log errors: Zig error-level lines, 'Connection error:' lines and crashes."),
            ("warnings", "Gateway log warnings: Zig warning-level and 'Warn:' lines."),
            ("crashes", "Gateway crashes: 'thread N panic:' lines."))}
        skills = counter("zcnb_gateway_skill_invocations", "Skill invocations in the gateway log.",
                         labels=[*lab, "skill"])
        tools = counter("zcnb_gateway_tool_calls", "Agent tool calls in the gateway log.", labels=[*lab, "tool"])
        source_up = gauge("zcnb_exporter_log_source_up", "1 while the gateway's log source is being read.",
                          labels=[*lab, "source"])
        backlog = gauge("zcnb_exporter_log_backlog_bytes", "Log-file bytes not yet read (read on later scrapes).",
                        labels=lab)
        for w in self.watches:
            labels = [w.target.instance, w.target.unit_label]
            snap = w.counts.snapshot()
            for name, value in (("restarts", w.restarts), ("log_lines", snap.lines), ("errors", snap.errors),
                                ("warnings", snap.warnings), ("crashes", snap.crashes)):
                simple[name].add_metric(labels, float(value))
            for skill, n in sorted(snap.skills.items()):
                skills.add_metric([*labels, skill], float(n))
            for tool, n in sorted(snap.tools.items()):
                tools.add_metric([*labels, tool], float(n))
            if w.log is not None:
                source_up.add_metric([*labels, w.target.log_source], 1.0 if w.log.ok else 0.0)
            if isinstance(w.log, FileTail):
                backlog.add_metric(labels, float(w.log.backlog))
        yield from simple.values()
        yield from (skills, tools, source_up, backlog)


class Exporter:
    """The collector behind an HTTP server on ``host:port`` (0 = a free port); a context manager."""

    def __init__(self, targets: tuple[GatewayTarget, ...] | list[GatewayTarget], *, host: str = "127.0.0.1",
                 port: int = 9840, options: ExporterOptions | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.options = options or ExporterOptions()
        self.watches = [GatewayWatch(t, self.options, report) for t in targets]
        self.collector = GatewayCollector(self.watches)
        self.host, self.port = host, port
        self._server: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> Exporter:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import start_wsgi_server

        from ..exceptions import ConfigError

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        for w in self.watches:
            w.start()
        try:
            self._server, _thread = start_wsgi_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:
            self.stop()
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}",
                              hint="choose another --listen address or port (port 0 picks a free one)") from None
        self.port = int(self._server.server_port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for w in self.watches:
            w.stop()

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def scrape(self) -> bytes:
        """One exposition, as the HTTP endpoint would serve it (for tests and benchmarks)."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        return generate_latest(registry)
