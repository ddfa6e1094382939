"""``zcnb demo``: a whole incident on the simulated gateway, end to end, in about a minute and a half.

1. start the simulated gateway (``real`` profile, leaking on one request kind) under the
   process-supervisor backend, with traffic (skill calls and token-less probes in waves);
2. sample it (psutil every ``interval_s``, /metrics every 10 s) for ``sample_s``;
3. restart it through the service API (executed: it is the simulator), sample again for ``after_s``
   (together at least the 60 s a verdict needs);
4. its log lines are captured as journald would (stamped on arrival, redacted) into
   ``journal.jsonl``;
5. run every stage notebook on the incident folder, build ``report.html`` (and ``report.pdf``)
   and refresh the incidents ``index.html``.

Each step prints one line as it happens (``say``). The simulator's own counts
(``/__ground_truth``) are kept in ``ground_truth.json`` so tests can compare the report with what
really happened. Nothing is left running, and nothing is left in ``$TMPDIR``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Secret, read_token
from ..files import write_json
from ..units import format_bytes, format_duration

__all__ = ["DemoOptions", "run_demo"]

UNIT = "zeptoclaw-gateway.service"
DEMO_SKILLS = {"git_workflow": 0.25, "web-search": 0.12, "summarize_thread": 0.08}
DEMO_TOOLS = {"web_fetch": 0.05}
_STAGE_ORDER = ("01", "02", "03", "04", "06", "05")
# What the stage kernels import while they wait (the slow part of a kernel's start).
_PRELOAD = ("pandas", "matplotlib.figure", "scipy.signal", "zcnb.analysis", "zcnb.collect.sampling",
            "zcnb.stages.confirm", "zcnb.stages.mitigate", "zcnb.stages.diagnose", "zcnb.stages.restore",
            "zcnb.stages.escalate", "zcnb.stages.report")


@dataclass(frozen=True)
class DemoOptions:
    """Knobs of the demo; the defaults are what ``zcnb demo`` runs."""

    sample_s: float = 42.0
    after_s: float = 19.0
    interval_s: float = 0.5
    metrics_interval_s: float = 10.0
    leak_kind: str = "unauth"
    leak_bytes: int = 64 * 1024
    unauth_rate: float = 4.0  # average token-less probes per second (sent in on/off waves)
    probe_period_s: float = 10.0
    skills: dict[str, float] = field(default_factory=lambda: dict(DEMO_SKILLS))
    tools: dict[str, float] = field(default_factory=lambda: dict(DEMO_TOOLS))
    bucket: str = "2s"  # stage 03's activity buckets: ~30 over the minute sampled, several per probe wave
    seed: int = 7
    pdf: bool = False  # also print report.pdf (needs Chromium)
    stage_workers: int = 2  # stages run side by side when their inputs are ready (1: one after the other)
    warm_kernels: bool = True  # start the stages' kernels (helpers imported) while sampling
    # A real zeptoclaw-gateway binary instead of the simulator (zcnb.demo.realgw): it leaks each token-less
    # request's parsed headers, so the probes carry ``probe_headers`` extra headers; no skill/tool traffic
    # (its /agent would call the model API); restarted with the clean stop (it ignores SIGTERM).
    gateway_binary: str | None = None
    probe_headers: int = 20


class _JournalCapture:
    """The gateway's log lines as journald would store them: stamped on arrival, with the unit and pid.

    Lines are redacted (the startup banner prints the token) and appended to ``out`` as
    ``journalctl -o json`` entries as they arrive, so nothing is lost if the demo is interrupted.
    """

    def __init__(self, log_file: Path, out: Path, *, pid_file: Path, token: Secret, poll_s: float = 0.1) -> None:
        from ..logs.journal import LogTail
        from ..redact import Redactor

        self.pid_file = pid_file
        self._redact = Redactor.create(secrets=[token])
        self._fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._cursor = 0
        self._tail = LogTail(log_file, poll_s=poll_s, sink=self._write)
        self._started = False

    @property
    def running(self) -> bool:
        return self._fd >= 0

    def start(self) -> None:
        self._tail.start()
        self._started = True

    def stop(self) -> None:
        if self._fd < 0:
            return
        if self._started:
            self._tail.stop()
        os.close(self._fd)
        self._fd = -1

    def _write(self, now_us: int, lines: list[bytes]) -> None:
        try:
            pid = self.pid_file.read_text(encoding="utf-8").strip()
        except OSError:
            pid = ""
        out = []
        for raw in lines:
            self._cursor += 1
            out.append(json.dumps({
                "__REALTIME_TIMESTAMP": str(now_us), "__CURSOR": f"s=zcnbdemo;i={self._cursor:x}", "_PID": pid,
                "_SYSTEMD_USER_UNIT": UNIT, "SYSLOG_IDENTIFIER": "zeptoclaw-gateway", "PRIORITY": "6",
                "MESSAGE": self._redact(raw.decode("utf-8", "replace")),
            }) + "\n")
        if out:
            os.write(self._fd, "".join(out).encode("utf-8"))


def _probe_waves(url: str, *, rate: float, seconds: float, period_s: float, seed: int, headers: int = 0) -> int:
    """Token-less probes in waves: ``rate``/s for half of each period, none for the other half.

    Real probe traffic comes in bursts (a heartbeat checker, a load balancer); the on/off contrast also gives
    the stage-03 regression the leverage to tell the probes' memory from the steady skill traffic's.
    """
    from .traffic import TrafficGenerator

    end = time.monotonic() + seconds
    k = 0
    sent = 0
    while (left := end - time.monotonic()) > 0:
        on = min(period_s / 2, left)
        with TrafficGenerator(url, token=None, unauth_rate=rate, seed=seed + k, probe_headers=headers) as tg:
            time.sleep(on)
        sent += tg.counts().unauth
        k += 1
        time.sleep(max(0.0, min(period_s / 2, end - time.monotonic())))
    return sent


def _ground_truth(url: str, token: Secret) -> dict[str, Any]:
    import httpx

    r = httpx.get(url.rstrip("/") + "/__ground_truth", headers={"X-Auth-Token": token.reveal()}, timeout=10.0,
                  trust_env=False)  # never send the token to a proxy from the environment
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def _add_counts(total: dict[str, Any], snap: dict[str, Any]) -> dict[str, Any]:
    """Add one process lifetime's counters to the running totals (numbers and dicts of numbers)."""
    out = dict(total)
    for key in ("requests_total", "unauth", "rate_limited", "bad_requests", "requests", "skills", "tools",
                "unauth_by_route"):
        va, vb = total.get(key), snap.get(key)
        if isinstance(vb, dict):
            merged = Counter({k: int(v) for k, v in (va or {}).items()})
            merged.update({k: int(v) for k, v in vb.items()})
            out[key] = dict(sorted(merged.items()))
        elif isinstance(vb, (int, float)):
            out[key] = (va or 0) + vb
    out["processes"] = [*total.get("processes", []), {k: snap.get(k) for k in ("pid", "started_at", "uptime_s", "leak")}]
    return out


def _print_step(text: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(text)  # above a progress bar that is being drawn, not through it


def run_demo(*, incidents_dir: str | os.PathLike[str] | None = None, options: DemoOptions | None = None,
             progress: bool = True, run_stages: bool = True, say: Callable[[str], None] | None = None) -> Any:
    """Run the demo incident; returns the :class:`zcnb.report.IncidentRun` (or the folder without stages).

    ``say`` gets one line per step (default: printed); ``progress`` shows the sampling progress bar.
    """
    from ..config import load_settings
    from ..incident import new_incident_dir, open_incident
    from ..ops.demo_target import simulator_service
    from ..service import ProcessSupervisorBackend

    opt = options or DemoOptions()
    # The simulator's token: $GATEWAY_AUTH_TOKEN when set (so a caller can check it never leaks), else random.
    # Read (and checked) first: a value that cannot be sent stops the demo before anything is created.
    token = read_token("GATEWAY_AUTH_TOKEN") or Secret(secrets.token_urlsafe(24))
    say = say or _print_step
    base = Path(incidents_dir) if incidents_dir else load_settings().incidents_path
    folder = new_incident_dir(base, "demo")
    incident = open_incident(folder)
    work = Path(tempfile.mkdtemp(prefix="zcnb-demo-"))
    os.chmod(work, 0o700)
    real = opt.gateway_binary is not None
    if real:
        from .realgw import locate_real_gateway, real_gateway_service

        exe = locate_real_gateway(opt.gateway_binary)
        assert exe is not None  # a given path is checked (ConfigError) or found
        svc = real_gateway_service(UNIT, exe, run_dir=work, token=token, stop_method="clean")
        opt = dataclasses.replace(opt, skills={}, tools={})
    else:
        svc = simulator_service(
            UNIT, run_dir=work, token=token, profile="real", leak="per_request",
            extra_args=["--leak-kind", opt.leak_kind, "--leak-bytes", str(opt.leak_bytes), "--seed", str(opt.seed),
                        "--exit-with-parent", "--rate-limit", "100"],
        )
    manager = ProcessSupervisorBackend([svc], run_dir=work)
    url = svc.health.url.rsplit("/health", 1)[0] if svc.health else ""
    capture = _JournalCapture(svc.log_file, incident.path("journal"), pid_file=svc.pid_file, token=token)
    t0 = time.monotonic()
    pool = None
    try:
        # The stages see the token only through the environment variable whose *name* is their parameter;
        # it is set before the pool's kernels start, so they inherit it.
        with _env("GATEWAY_AUTH_TOKEN", token):
            say(f"incident folder: {folder}")
            manager.start(UNIT, timeout_s=15.0)
            capture.start()
            kind = "token-less (unauth)" if opt.leak_kind == "unauth" else opt.leak_kind
            if real:
                say(f"gateway started: pid {_pid(svc.pid_file)} at {url} (the real binary {svc.argv[0]}; it leaks "
                    f"the parsed headers of every token-less request: probes carry {opt.probe_headers} extra "
                    "headers; no skill/tool traffic: its /agent would call the model API)")
            else:
                say(f"gateway started: pid {_pid(svc.pid_file)} at {url} (simulated, real profile; leaks "
                    f"{format_bytes(opt.leak_bytes)} per {kind} request)")
            if run_stages and opt.warm_kernels:  # the stages' kernels start (and import) while the gateway is sampled
                from ..report.kernel import KernelPool

                pool = KernelPool(len(_STAGE_ORDER), cwd=folder, preload=_PRELOAD)
            timings, truth = _collect(manager, incident, svc, url, token, opt, progress=progress, say=say, real=real)
            capture.stop()
            say(f"logs: {_count_lines(incident.path('journal'))} journal lines captured (redacted) into journal.jsonl")
            timings["collect_s"] = time.monotonic() - t0
            write_json(folder / "ground_truth.json",
                       {**truth, "leak_kind": "unauth" if real else opt.leak_kind,
                        "leak_bytes": None if real else opt.leak_bytes,
                        **({"gateway": "real", "probe_headers": opt.probe_headers} if real else {})})
            if not run_stages:
                return folder
            run = _stages(manager, folder, work, opt, say=say, kernels=pool)
        run.summary.setdefault("timings", {}).update({k: round(v, 2) for k, v in timings.items()})
        say(f"done in {format_duration(time.monotonic() - t0)}")
        return run
    finally:
        if pool is not None:
            pool.close()
        manager.close()
        if capture.running:
            capture.stop()
        shutil.rmtree(work, ignore_errors=True)


def _pid(pid_file: Path) -> str:
    try:
        return pid_file.read_text(encoding="utf-8").strip()
    except OSError:
        return "?"


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def _collect(manager: Any, incident: Any, svc: Any, url: str, token: Secret, opt: DemoOptions, *, progress: bool,
             say: Callable[[str], None], real: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """Traffic and sampling before and after an executed restart; (timings, the simulator's counts)."""
    from ..collect.process import ProcessQuery
    from ..collect.sampling import Sampler
    from ..service import plan_restart, restart_service
    from .traffic import TrafficGenerator

    def make_sampler(seconds: float, append: bool) -> tuple[Any, threading.Thread]:
        smp = Sampler(
            incident.path("samples"), query=ProcessQuery(pid_file=str(svc.pid_file)), url=url, token=token,
            sources=("psutil", "metrics"), interval_s=opt.interval_s, duration_s=seconds,
            metrics_interval_s=opt.metrics_interval_s, progress=progress, append=append,
        )
        return smp, threading.Thread(target=smp.run, name="zcnb-demo-sampler", daemon=True)

    # The real binary prints its leak report for a long time after the clean stop (~4 ms per record) and its
    # RSS jumps while it loads its debug info: those samples are of a process that is exiting, not of the leak.
    # So on it, sampling pauses for the restart (a second sampler appends after it).
    sampler, sampling = make_sampler(opt.sample_s + opt.after_s + 15 if not real else opt.sample_s + 5, False)
    timings: dict[str, float] = {}
    truth: dict[str, Any] = {}
    rates = ", ".join(f"{k} {v:g}/s" for k, v in {**opt.skills, **opt.tools}.items())
    say(f"traffic: {f'skill and tool calls with the token ({rates})' if rates else 'no calls with the token'}; "
        f"token-less probes {2 * opt.unauth_rate:g}/s in "
        f"{opt.probe_period_s / 2:g} s waves")
    say(f"sampling: psutil every {opt.interval_s:g} s, /metrics every {opt.metrics_interval_s:g} s; "
        f"{opt.sample_s:g} s, a restart, then {opt.after_s:g} s" + (" (paused during the restart)" if real else ""))
    sampling.start()
    traffic = None
    try:
        for phase, seconds in (("before", opt.sample_s), ("after", opt.after_s)):
            traffic = TrafficGenerator(url, token=token, skills=opt.skills, tools=opt.tools, seed=opt.seed + len(truth))
            traffic.start()
            probes = _probe_waves(url, rate=2 * opt.unauth_rate, seconds=seconds, period_s=opt.probe_period_s,
                                  seed=opt.seed + len(truth), headers=opt.probe_headers if real else 0)
            traffic.stop()
            traffic = None
            if real:  # the real binary has no /__ground_truth: count what was sent and answered 401
                truth = {**truth, "unauth": truth.get("unauth", 0) + probes,
                         "unauth_by_phase": {**truth.get("unauth_by_phase", {}), phase: probes}}
            else:
                truth = _add_counts(truth, _ground_truth(url, token))
            if phase == "before":
                old = _pid(svc.pid_file)
                if real:
                    sampler.stop()
                    sampling.join(timeout=30)
                plan = plan_restart(manager, unit=UNIT)
                result = restart_service(manager, unit=UNIT, execute=True, confirm=plan.plan_id, token=token,
                                         incident=incident)
                timings["restart_s"] = result.duration_s or 0.0
                say(f"restart: {result.outcome}, pid {old} -> {_pid(svc.pid_file)} in "
                    f"{format_duration(result.duration_s)} (health: {result.health_after or 'not checked'})")
                if real:
                    sampler, sampling = make_sampler(opt.after_s + 5, True)
                    sampling.start()
    finally:
        if traffic is not None:
            traffic.stop()
        sampler.stop()
        sampling.join(timeout=30)
    say(f"sampling done: {_count_samples(incident.path('samples'))} samples in samples.csv")
    return timings, truth


def _count_samples(path: Path) -> int:
    try:
        with open(path, encoding="utf-8") as fh:
            return sum(1 for line in fh if line[:1].isdigit() and ",gap," not in line)
    except OSError:
        return 0


def _stages(manager: Any, folder: Path, work: Path, opt: DemoOptions, *, say: Callable[[str], None],
            kernels: Any = None) -> Any:
    """Every stage notebook on the folder (one line each), the report, its PDF and the incidents index."""
    from ..report.runner import run_incident

    # The stages see the still-running demo gateway through the supervisor file.
    sup_file = manager.to_file(work / "supervisor.json")

    def stage_done(result: Any, k: int, n: int) -> None:
        extra = f": {result.error}" if result.status != "ok" else ""
        say(f"stage {k}/{n} {result.notebook}: {result.status} ({format_duration(result.duration_s)}){extra}")

    run = run_incident(incident_dir=folder, progress=False,
                       commit="demo-real-gateway" if opt.gateway_binary else "demo-simulator", pdf=opt.pdf, index=True,
                       workers=opt.stage_workers, kernels=kernels, on_stage=stage_done,
                       stage_parameters={"02": {"supervisor_file": str(sup_file)}, "03": {"bucket": opt.bucket}})
    if run.report_html:
        say(f"report: {run.report_html.name} written" + (", report.pdf printed" if run.report_pdf else ""))
    if (folder.parent / "index.html").is_file():
        say(f"index: {folder.parent / 'index.html'}")
    return run


@contextlib.contextmanager
def _env(name: str, value: Secret) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value.reveal()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
