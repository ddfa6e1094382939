"""Preflight: check each assumption the runbook makes against the live target.

The result is a table of checks (ok / warn / fail / skip, with details) plus what
later stages need to choose instead of failing on the first wrong assumption:
which memory sources to sample (:meth:`PreflightResult.choose_sources`), whether
/metrics needs the plain-socket path, which skill log form to expect, which state
layout exists. Every probe is a single request drawn from the gateway's shared request budget
(:mod:`zcnb.collect.budget`): the real gateway crashes past 100 requests a minute. A probe that finds no free
slot in time is not sent, and its row says so.
No token-less request is sent unless asked for (``probe_unauth=True``): on the real
gateway each one leaks memory, so without a token /metrics and /health are not probed.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import NO_TOKEN_LEAK, Secret, Settings, check_unit, gateway_token, load_settings, token_source
from ..exceptions import (
    ConfigError,
    EndpointAuthError,
    ProcessAmbiguous,
    RequestBudgetExhausted,
    TargetError,
    ZcnbError,
)
from ..files import read_input
from ..logs.skills import detect_skill_form
from ..units import format_bytes
from .budget import GATEWAY_LIMIT, budget_for_url
from .metrics import MEMORY_METRICS, MetricsClient, parse_metrics
from .process import ProcessQuery, find_by_query, read_cgroup_memory, read_memory

__all__ = ["Check", "PreflightResult", "parse_systemctl_show", "preflight"]

STATUSES = ("ok", "warn", "fail", "skip")
_SHOW_PROPS = ("Id", "LoadState", "ActiveState", "SubState", "MainPID", "MemoryMax", "MemoryCurrent")


@dataclass(frozen=True)
class Check:
    """One row of the preflight table."""

    name: str
    status: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PreflightResult:
    """The checks, and the choices later stages take from them."""

    checks: tuple[Check, ...]
    url: str | None
    unit: str | None
    pid: int | None
    metrics_memory: tuple[str, ...]
    metrics_status_line: bool | None
    metrics_needs_token: bool | None
    cgroup_readable: bool
    skill_log_form: str | None  # "skill:NAME" | "tool skill" | "both" | None (unknown)
    layout: str | None  # "runbook" | "zeptoclaw" | "both" | None
    memory_max_bytes: int | None
    journal_readable: bool
    process_query: ProcessQuery | None = None
    process: dict[str, Any] | None = None  # the ProcessInfo chosen: pid, exe, match, reason, passed_over
    request_budget: dict[str, Any] | None = None  # the gateway's shared request budget after the probes

    @property
    def ok(self) -> bool:
        """No check failed."""
        return not any(c.status == "fail" for c in self.checks)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise ConfigError(f"no preflight check named {name!r}", hint=f"one of: {', '.join(c.name for c in self.checks)}")

    def choose_sources(self) -> tuple[str, ...]:
        """Memory sources to sample, in TARGET.md's order of preference."""
        out = []
        if self.metrics_memory:
            out.append("metrics")
        if self.pid is not None:
            out.append("psutil")
            if self.cgroup_readable:
                out.append("cgroup")
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("checks", "process_query")}
        d["checks"] = [c.to_dict() for c in self.checks]
        d["process_query"] = self.process_query.to_dict() if self.process_query else None
        d["ok"], d["sources"] = self.ok, list(self.choose_sources())
        return d

    def table(self) -> Any:
        """The checks as a pandas DataFrame."""
        import pandas as pd
        return pd.DataFrame([{"check": c.name, "status": c.status, "detail": c.detail} for c in self.checks])

    @property
    def needs_token_text(self) -> str:
        """``yes`` / ``no`` / ``unknown (not probed)``: does /metrics refuse a token-less request?"""
        if self.metrics_needs_token is None:
            return "unknown (not probed)"
        return "yes" if self.metrics_needs_token else "no"

    def format_text(self) -> str:
        width = max((len(c.name) for c in self.checks), default=5)
        lines = [f"{c.name:<{width}}  {c.status.upper():<4}  {c.detail}" for c in self.checks]
        lines.append(f"-> sources: {','.join(self.choose_sources()) or 'none'}; skill log form: "
                     f"{self.skill_log_form or 'unknown'}; layout: {self.layout or 'none found'}; "
                     f"needs token: {self.needs_token_text}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"ok": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828", "skip": "#757575"}
        rows = "".join(f"<tr><td>{html.escape(c.name)}</td><td style='color:{colour[c.status]};font-weight:bold'>"
                       f"{c.status}</td><td>{html.escape(c.detail)}</td></tr>" for c in self.checks)
        return (f"<b>Preflight</b> {'passed' if self.ok else 'FAILED'}<table><tr><th>check</th><th>status</th>"
                f"<th>detail</th></tr>{rows}</table><p>sources: <code>{','.join(self.choose_sources()) or 'none'}"
                f"</code>; skill log form: <code>{html.escape(self.skill_log_form or 'unknown')}</code>; "
                f"needs token: <code>{html.escape(self.needs_token_text)}</code></p>")


def parse_systemctl_show(text: str) -> list[dict[str, str]]:
    """Blocks of ``Key=Value`` lines (one per unit, blank-line separated) from ``systemctl show``."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key.strip()] = value.strip()
    return blocks


def _run(argv: Sequence[str], timeout_s: float) -> tuple[int, str, str]:
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False,
                           errors="replace")
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout_s:g} s"
    except OSError as exc:
        return 127, "", str(exc)
    return p.returncode, p.stdout, p.stderr


def _not_sent(name: str, exc: RequestBudgetExhausted) -> Check:
    return Check(name, "warn", f"not probed: {exc.message}", {"reason": "budget"})


def _http_checks(url: str, token: Secret | None, timeout_s: float, probe_unauth: bool,
                 checks: list[Check], where: str = "env var GATEWAY_AUTH_TOKEN (or the token_file setting)",
                 budget_wait_s: float = 15.0) -> tuple[tuple[str, ...], bool | None, bool | None]:
    def client(u: str, tok: Secret | None, exact: bool = False) -> MetricsClient:
        return MetricsClient(u, token=tok, timeout_s=timeout_s, exact_url=exact, caller="preflight",
                             budget_wait_s=budget_wait_s)

    memory: tuple[str, ...] = ()
    status_line: bool | None = None
    needs_token: bool | None = None
    if token:
        try:
            reply = client(url, token).fetch()
            status_line = reply.status_line
            how = f"HTTP {reply.status}" if reply.status_line else "reply has NO status line (real gateway): read " \
                                                                  "over a plain socket"
            checks.append(Check("metrics (with token)", "ok" if reply.status_line else "warn", how, reply.to_dict()))
            try:
                ms = parse_metrics(reply.text, content_type=reply.content_type)
                memory = tuple(ms.memory_metrics())
                checks.append(Check("memory metrics", "ok" if memory else "warn",
                                    f"exports {', '.join(memory)}" if memory else
                                    f"none of {', '.join(MEMORY_METRICS)} (exports {', '.join(ms.names) or 'nothing'})"
                                    ": memory comes from the process (psutil) and cgroup", {"names": list(ms.names)}))
            except ZcnbError as exc:
                checks.append(Check("memory metrics", "fail", exc.message))
        except RequestBudgetExhausted as exc:
            checks.append(_not_sent("metrics (with token)", exc))
        except TargetError as exc:
            checks.append(Check("metrics (with token)", "fail", exc.message, {"reason": getattr(exc, "reason", "")}))
    else:
        checks.append(Check("metrics (with token)", "warn", f"no token (set it in the {where}): " + (
            "only the one token-less /metrics probe asked for (probe_unauth) is sent" if probe_unauth else
            "/metrics and /health not probed") + ", since " + NO_TOKEN_LEAK))
    if not probe_unauth:
        checks.append(Check("metrics (no token)", "skip", "needs token: unknown (not probed; --probe-unauth / "
                            "probe_unauth=True sends one token-less request)"))
    else:
        try:
            reply = client(url, None).fetch()
            needs_token = False
            checks.append(Check("metrics (no token)", "ok", "answers without a token (runbook picture)"))
            if not token:
                status_line = reply.status_line
                ms = parse_metrics(reply.text, content_type=reply.content_type)
                memory = tuple(ms.memory_metrics())
                checks.append(Check("memory metrics", "ok" if memory else "warn",
                                    f"exports {', '.join(memory)}" if memory else "no process memory metrics"))
        except RequestBudgetExhausted as exc:
            checks.append(_not_sent("metrics (no token)", exc))
        except EndpointAuthError:
            needs_token = True
            checks.append(Check("metrics (no token)", "ok" if token else "fail",
                                "401 without X-Auth-Token (real gateway behaviour)"))
        except ZcnbError as exc:
            checks.append(Check("metrics (no token)", "warn" if token else "fail", exc.message))
    if not token:
        checks.append(Check("/health", "skip", "not probed without a token"))
        return memory, status_line, needs_token
    try:
        health = client(url.rstrip("/") + "/health", token, exact=True).fetch()
        body, state = health.text.strip(), ""
        try:
            data = json.loads(body)
            state = str(data.get("status", "")) if isinstance(data, dict) else ""
        except ValueError:
            state = body[:40]
        good = state.lower() in ("healthy", "ok")
        checks.append(Check("/health", "ok" if good else "warn", f"status {state or body[:60]!r}"
                            + ("" if health.status_line else " (no status line)"), {"body": body[:500]}))
    except RequestBudgetExhausted as exc:
        checks.append(_not_sent("/health", exc))
    except TargetError as exc:
        reason = getattr(exc, "reason", "")
        extra = ": the server is single-threaded, a timeout is not a dead process" if reason == "timeout" else ""
        checks.append(Check("/health", "warn" if reason == "timeout" else "fail", exc.message + extra))
    return memory, status_line, needs_token


def preflight(settings: Settings | None = None, *, url: str | None = None, token: Secret | None = None,
              unit: str | None = None, pid: int | None = None, pid_file: str | None = None,
              pattern: str | None = None, exclude_children: bool = True, log_lines: Sequence[str] | None = None,
              log_file: str | Path | None = None, probe_unauth: bool = False, timeout_s: float = 3.0,
              check_systemd: bool = True, port: int | None = None, budget_wait_s: float = 15.0) -> PreflightResult:
    """Run every check; never raises for what it finds (that goes in the table), only for bad arguments.

    The token is ``token``, else the settings' (``token_env`` variable, else ``token_file``). Without
    ``probe_unauth`` no request is sent without a token (each leaks memory on the real gateway):
    ``metrics_needs_token`` stays None ("unknown (not probed)"). ``port`` replaces the settings' port in the
    default URL (``url`` wins when given). An explicit ``unit`` also finds the process (its MainPID) when no pid
    or pid file is given. Each probe waits up to ``budget_wait_s`` for a slot of the gateway's request budget.
    """
    s = settings or load_settings()
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise ConfigError(f"port {port!r} is not a TCP port (1-65535)", hint="e.g. --port 18789")
    url = url or f"http://{s.host}:{port or s.port}"
    token = token if token is not None else gateway_token(settings=s)
    explicit_unit = unit
    unit = unit or s.unit
    checks: list[Check] = []
    memory, status_line, needs_token = _http_checks(url, token, timeout_s, probe_unauth, checks,
                                                    token_source(settings=s), budget_wait_s=budget_wait_s)
    budget_info = _budget_check(url, s, checks)

    by_id = bool(pid or pid_file)
    query = ProcessQuery(pid=pid, pid_file=pid_file, unit=None if by_id else explicit_unit or None,
                         pattern=None if (by_id or explicit_unit) else pattern or s.process_pattern,
                         exclude_children=exclude_children)
    found_pid = None
    found: dict[str, Any] | None = None
    cgroup_ok = False
    try:
        info = find_by_query(query)
        found_pid, found = info.pid, info.to_dict()
        reading = read_memory(info.pid)
        checks.append(Check("process", "ok" if info.match != "command line" else "warn",
                            f"{info.describe()}; RSS {format_bytes(reading.rss_bytes, unit='MiB')}"
                            + (f"; {'; '.join(reading.notes)}" if reading.notes else ""), {"pid": info.pid}))
        cg, path, note = read_cgroup_memory(info.pid)
        cgroup_ok = cg is not None
        checks.append(Check("cgroup memory", "ok" if cg is not None else "skip",
                            f"{path}: {format_bytes(cg, unit='MiB')} (counts every process in the cgroup)" if cg is not None
                            else note or "not readable"))
    except ProcessAmbiguous as exc:
        checks.append(Check("process", "fail", str(exc), {"candidates": getattr(exc, "candidates", [])}))
        checks.append(Check("cgroup memory", "skip", "no process chosen"))
    except ZcnbError as exc:
        checks.append(Check("process", "fail", exc.message))
        checks.append(Check("cgroup memory", "skip", "no process"))

    memory_max, journal_ok, journal_lines = _systemd_checks(unit, s.units, timeout_s, check_systemd, checks)
    lines = list(log_lines or [])
    if log_file:
        try:
            lines += read_input(log_file, what="log file").decode("utf-8", "replace").splitlines()[-5000:]
        except ZcnbError as exc:
            checks.append(Check("log file", "fail", exc.message))
    lines += journal_lines
    form, n_tok, n_tool = detect_skill_form(lines)
    if not lines:
        checks.append(Check("skill log form", "skip", "no log lines to look at (journal unreadable, no log file)"))
    else:
        checks.append(Check("skill log form", "ok" if form else "warn",
                            f"{form}: {n_tok} skill:NAME line(s), {n_tool} '[agent] tool skill' line(s)" if form
                            else f"no skill invocations in {len(lines)} line(s): form unknown yet",
                            {"skill_tokens": n_tok, "tool_skill": n_tool}))
    debug = sum(1 for ln in lines if ln.startswith("debug") or " debug: " in ln)
    checks.append(Check("LOG_LEVEL honoured", "ok" if debug else "skip",
                        f"{debug} debug line(s) seen" if debug else
                        "unverified: the real gateway ignores LOG_LEVEL; stage 02 checks for debug lines after the "
                        "drop-in"))
    layout = _layout_check(s, checks)
    return PreflightResult(checks=tuple(checks), url=url, unit=unit, pid=found_pid, metrics_memory=memory,
                           metrics_status_line=status_line, metrics_needs_token=needs_token, cgroup_readable=cgroup_ok,
                           skill_log_form=form, layout=layout, memory_max_bytes=memory_max, journal_readable=journal_ok,
                           process_query=query, process=found, request_budget=budget_info)


def _budget_check(url: str, s: Settings, checks: list[Check]) -> dict[str, Any] | None:
    """The request budget row: how much of the shared window is used (after preflight's own probes)."""
    try:
        usage = budget_for_url(url, settings=s).usage()
    except ZcnbError as exc:
        checks.append(Check("request budget", "fail", f"{exc.message} (no request can be sent without it)"))
        return None
    status, extra = "ok", ""
    if usage.limit > GATEWAY_LIMIT * 0.9:
        status = "warn"
        extra = (f"; request_budget {usage.limit} is close to or above the real gateway's {GATEWAY_LIMIT} per 60 s, "
                 "whose request 101 crashes it")
    checks.append(Check("request budget", status, usage.describe() + extra, usage.to_dict()))
    return usage.to_dict()


def _systemd_checks(unit: str, units: Sequence[str], timeout_s: float, enabled: bool,
                    checks: list[Check]) -> tuple[int | None, bool, list[str]]:
    memory_max = None
    systemctl = shutil.which("systemctl") if enabled else None
    if systemctl is None:
        why = "disabled" if not enabled else "systemctl not installed"
        checks += [Check("units", "skip", why), Check("MemoryMax", "skip", why)]
    else:
        rc, out, err = _run([systemctl, "--user", "show", "-p", ",".join(_SHOW_PROPS), "--", *map(check_unit, units)], timeout_s)
        if rc != 0:
            why = (err.strip().splitlines() or [f"exit {rc}"])[-1]
            checks += [Check("units", "skip", f"no systemd user manager reachable ({why})"),
                       Check("MemoryMax", "skip", "no systemd user manager")]
        else:
            blocks = parse_systemctl_show(out)
            present = [b for b in blocks if b.get("LoadState") == "loaded"]
            active = [b.get("Id", "?") for b in present if b.get("ActiveState") == "active"]
            missing = [b.get("Id", "?") for b in blocks if b.get("LoadState") != "loaded"]
            checks.append(Check("units", "ok" if not missing else "warn",
                                f"{len(present)} present, active: {', '.join(active) or 'none'}"
                                + (f"; missing: {', '.join(missing)}" if missing else ""), {"units": blocks}))
            main = next((b for b in blocks if b.get("Id") == unit), {})
            mm = main.get("MemoryMax", "")
            if mm.isdigit():
                memory_max = int(mm)
                checks.append(Check("MemoryMax", "ok", f"{unit}: {format_bytes(memory_max, unit='MiB', digits=0)}"))
            else:
                checks.append(Check("MemoryMax", "warn", f"{unit} sets no MemoryMax ({mm or 'unset'}): time-to-OOM "
                                                         "uses the machine's available memory"))
    journalctl = shutil.which("journalctl") if enabled else None
    if journalctl is None:
        checks.append(Check("journal", "skip", "journalctl not installed" if enabled else "disabled"))
        return memory_max, False, []
    # As root, `--user -u` adds _UID=<caller> and misses the gateway user's entries: match the field instead.
    rc, out, err = _run([journalctl, "--no-pager", "-o", "cat", "-n", "2000", "--", f"_SYSTEMD_USER_UNIT={unit}"], timeout_s)
    if rc != 0:
        checks.append(Check("journal", "warn", f"journalctl failed: {(err.strip().splitlines() or [str(rc)])[-1]}"))
        return memory_max, False, []
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("-- ")]
    checks.append(Check("journal", "ok" if lines else "warn",
                        f"{len(lines)} recent entr{'y' if len(lines) == 1 else 'ies'} for {unit}" if lines else
                        f"no journal entries for {unit} (no journald here, or the unit never ran)"))
    return memory_max, bool(lines), lines


def _layout_check(s: Settings, checks: list[Check]) -> str | None:
    runbook = {"state": s.state_dir, "backups": s.backups_dir, "incidents": s.incidents_path}
    home = s.zeptoclaw_home
    real = {"config.json": home / "config.json", "sessions": home / "sessions", "workspace": home / "workspace"}
    rb = [k for k, p in runbook.items() if p.exists()]
    zc = [k for k, p in real.items() if p.exists()]
    layout = "both" if rb and zc else "runbook" if rb else "zeptoclaw" if zc else None
    detail = (f"runbook layout under {s.data_dir}: {', '.join(rb) or 'nothing'}; "
              f"~/.zeptoclaw layout under {home}: {', '.join(zc) or 'nothing'}")
    status = "ok" if layout else "warn"
    if layout and "backups" not in rb:
        detail += "; no backups folder (no backup script exists for the real gateway)"
    checks.append(Check("state paths", status, detail, {"runbook": rb, "zeptoclaw": zc}))
    return layout
