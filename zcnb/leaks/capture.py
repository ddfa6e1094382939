"""Run things under a leak checker, and capture the gateway's exit-time leak report.

* :func:`run_with_leak_check` is the runbook's "Profile Memory"/"Test Fix" workflow: start a
  command under valgrind (memcheck or massif) or with ASan/LSan options, let it run, stop it
  with a signal, wait, parse what it printed.
* :func:`capture_leak_report` is the clean-exit capture: Zig's debug allocator reports only at
  a clean exit, and the real gateway looks at its SIGTERM flag only when accept() *fails*. So:
  SIGTERM, make accept() fail (:mod:`zcnb.leaks.cleanstop`: shutdown of a pidfd_getfd duplicate
  of its listening socket, else a lowered fd limit and one connection), wait, SIGKILL only after
  the timeout (the report is then lost, and we say so), collect and parse the new log text,
  restart. Dry run by default.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan, require_confirmation
from ..exceptions import ConfigError, ProcessNotFound
from ..files import ensure_private_dir, write_private
from ..redact import Redactor, default_redactor
from .cleanstop import METHODS, clean_stop, plan_steps, state_save_outcome
from .massif import MassifReport, parse_massif_file
from .model import LeakReport
from .parse import parse_leak_report

__all__ = ["CaptureResult", "LeakCapture", "capture_leak_report", "run_with_leak_check"]

TOOLS = ("valgrind", "asan", "lsan", "massif")
# Environment variables whose values are secrets to hide from the stored output (e.g. GATEWAY_AUTH_TOKEN).
_SECRET_ENV = re.compile(r"(?i)(token|secret|passw(or)?d|passphrase|api[_-]?key|access[_-]?key|private[_-]?key)$")


def _redactor(env: Mapping[str, str] | None = None) -> Redactor:
    """zcnb's one set of redaction rules, plus the gateway token and secret-looking values of ``env``."""
    # >= 8 characters: a flag such as USE_API_KEY=false must not blank every "false" in a leak report
    values = [v for k, v in (env or {}).items() if _SECRET_ENV.search(k) and len(v) >= 8]
    return default_redactor(secrets=values)


@dataclass(frozen=True)
class CaptureResult:
    """What :func:`run_with_leak_check` ran, how it stopped, and the parsed report."""

    tool: str
    command: tuple[str, ...]
    seconds: float
    stop_signal: str
    exit_code: int | None  # negative: killed by that signal
    exited_early: bool
    killed: bool  # SIGKILLed after the stop timeout: the exit-time report is lost
    duration_s: float
    report: LeakReport | None
    massif: MassifReport | None
    output_path: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "command": list(self.command), "seconds": self.seconds,
                "stop_signal": self.stop_signal, "exit_code": self.exit_code, "exited_early": self.exited_early,
                "killed": self.killed, "duration_s": self.duration_s, "output_path": self.output_path,
                "report": self.report.to_dict() if self.report else None,
                "massif": self.massif.to_dict() if self.massif else None, "notes": list(self.notes)}

    @property
    def summary(self) -> str:
        how = "SIGKILLed (report lost)" if self.killed else f"exit code {self.exit_code}"
        body = self.massif.summary if self.massif else self.report.summary if self.report else "no report"
        return f"{self.tool} run of {self.duration_s:.1f} s, {how}: {body}"

    def _repr_html_(self) -> str:
        import html

        inner = (self.massif or self.report)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<p><code>{html.escape(' '.join(self.command))}</code></p><p>{html.escape(self.summary)}</p>"
                + (f"<ul>{notes}</ul>" if notes else "") + (inner._repr_html_() if inner else ""))


def _tool_command(tool: str, argv: Sequence[str], out: Path) -> list[str]:
    if tool in ("valgrind", "massif"):
        vg = shutil.which("valgrind")
        if vg is None:
            raise ConfigError("valgrind is not installed", hint="apt-get install valgrind, or use tool='asan'")
        if tool == "valgrind":
            return [vg, "--leak-check=full", "--show-leak-kinds=all", f"--log-file={out}", *argv]
        return [vg, "--tool=massif", "--pages-as-heap=yes", f"--massif-out-file={out}", *argv]
    return list(argv)


def _sanitizer_env(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ if env is None else env)
    # The runbook's options; user-given options come after ours (last one wins in sanitizer parsing).
    for var in ("ASAN_OPTIONS", "LSAN_OPTIONS"):
        merged[var] = ":".join(x for x in ("detect_leaks=1:halt_on_error=0", merged.get(var, "")) if x)
    return merged


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> tuple[int | None, bool]:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=30), True


def _output_folder(out_dir: str | os.PathLike[str] | None) -> Path:
    """``out_dir`` (created 0700 when new; an existing folder keeps its mode) or a new private temp folder."""
    if not out_dir:
        return Path(tempfile.mkdtemp(prefix="zcnb-leakcheck-"))  # mkdtemp makes it 0700
    folder = Path(out_dir)
    return folder if folder.is_dir() else ensure_private_dir(folder)


def _store_redacted(scratch: Path, folder: Path, red: Redactor) -> None:
    """Write redacted 0600 copies of the tool's files from ``scratch`` into ``folder`` (the raw ones are dropped)."""
    for raw in sorted(scratch.iterdir()):
        write_private(folder / raw.name, red.redact_bytes(raw.read_bytes()))


def _launch(cmd: list[str], scratch: Path, env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None,
            ) -> subprocess.Popen[bytes]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    so = os.open(scratch / "stdout.log", flags, 0o600)
    se = os.open(scratch / "stderr.log", flags, 0o600)
    try:
        return subprocess.Popen(cmd, stdout=so, stderr=se, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ConfigError(f"cannot run {cmd[0]!r}: no such program", hint="check the command path") from None
    except PermissionError:
        raise ConfigError(f"cannot run {cmd[0]!r}: permission denied", hint="chmod +x it") from None
    finally:
        os.close(so)
        os.close(se)


def run_with_leak_check(argv: Sequence[str], *, tool: str = "valgrind", seconds: float = 30.0,
                        stop_signal: int = signal.SIGINT, env: Mapping[str, str] | None = None,
                        cwd: str | os.PathLike[str] | None = None, timeout: float = 30.0,
                        out_dir: str | os.PathLike[str] | None = None) -> CaptureResult:
    """Run ``argv`` under ``tool`` for ``seconds``, stop it with ``stop_signal``, parse the report.

    ``timeout`` bounds the wait after the signal; past it the process is SIGKILLed and the result
    says the exit-time report is lost. The tool writes into a private scratch folder; the report is
    parsed from that raw text, and only *redacted* copies (0600) are kept in ``out_dir`` (default:
    a new 0700 temp folder): the gateway's startup banner prints its token in clear.
    """
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) and a for a in argv):
        raise ConfigError(f"argv must be a non-empty list of strings, got {argv!r}",
                          hint="pass the command as a list, e.g. ['./gateway', '--port', '0']")
    if tool not in TOOLS:
        raise ConfigError(f"unknown leak-check tool {tool!r}", hint=f"use one of: {', '.join(TOOLS)}")
    if seconds < 0 or timeout <= 0:
        raise ConfigError("seconds must be >= 0 and timeout > 0", hint="e.g. seconds=30, timeout=30")
    folder = _output_folder(out_dir)
    name = "massif.out" if tool == "massif" else "valgrind.log" if tool == "valgrind" else "stderr.log"
    out = folder / name
    run_env = _sanitizer_env(env) if tool in ("asan", "lsan") else (dict(env) if env is not None else None)
    red = _redactor(run_env)
    scratch = Path(tempfile.mkdtemp(prefix=".zcnb-raw-", dir=folder))  # 0700, removed below
    try:
        cmd = _tool_command(tool, argv, scratch / name)
        notes: list[str] = []
        t0 = time.monotonic()
        proc = _launch(cmd, scratch, run_env, cwd)
        try:
            code: int | None = proc.wait(timeout=seconds)
            exited_early, killed = True, False
            notes.append(f"the program exited by itself after {time.monotonic() - t0:.1f} s (before the stop signal)")
        except subprocess.TimeoutExpired:
            exited_early = False
            code, killed = _stop(proc, stop_signal, timeout)
        report, massif = _parse_output(tool, scratch / name, killed, notes)
        _store_redacted(scratch, folder, red)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if killed:
        notes.append(f"did not exit within {timeout:g} s of {signal.Signals(stop_signal).name}: SIGKILLed, "
                     "so the exit-time leak report is lost")
    elif code is not None and code < 0 and tool in ("asan", "lsan"):
        notes.append(f"killed by {signal.Signals(-code).name}: sanitizers report leaks only at a normal exit; "
                     "handle the signal in the program (exit cleanly) or stop it with one it handles")
    shown = tuple(red.redact(a.replace(str(scratch / name), str(out))) for a in cmd)
    return CaptureResult(tool=tool, command=shown, seconds=seconds, stop_signal=signal.Signals(stop_signal).name,
                         exit_code=code, exited_early=exited_early, killed=killed,
                         duration_s=round(time.monotonic() - t0, 3), report=report, massif=massif,
                         output_path=str(out), notes=tuple(notes))


def _parse_output(tool: str, raw: Path, killed: bool, notes: list[str]) -> tuple[LeakReport | None, MassifReport | None]:
    """Parse the tool's raw (unredacted) output: redaction must not change what the parser sees."""
    if tool == "massif":
        if raw.exists():
            return None, parse_massif_file(raw)
        notes.append("massif wrote no output file (killed before exit?)")
        return None, None
    report = parse_leak_report(raw.read_bytes() if raw.exists() else b"")
    if not report.recognized:
        notes.append("no leak report in the output (no leaks found, or not built with -fsanitize / not run "
                     "under valgrind)" if not killed else "no leak report: the process was SIGKILLed")
    return report, None


# ---------------------------------------------------------------- clean-exit capture

LogSource = str | os.PathLike[str] | Callable[[], str]


class _LogTail:
    """New text of a log file (from an offset) or from a callable returning new text."""

    def __init__(self, source: LogSource) -> None:
        self.source = source
        self.offset = 0

    def mark(self) -> None:
        if callable(self.source):
            self.source()  # drain: only text after the SIGTERM counts
        else:
            p = Path(self.source)
            self.offset = p.stat().st_size if p.exists() else 0

    def read(self) -> str:
        if callable(self.source):
            return str(self.source())
        p = Path(self.source)
        if not p.exists():
            return ""
        size = p.stat().st_size
        if size < self.offset:  # rotated / truncated: read it all
            self.offset = 0
        with open(p, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        return data.decode("utf-8", errors="replace")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


@dataclass(frozen=True)
class LeakCapture:
    """The action record of a clean-exit capture, plus the parsed report (None on a dry run)."""

    action: ActionResult
    plan: Plan
    report: LeakReport | None = None
    report_lost: bool = False
    method: str | None = None  # the stop method that ran (None on a dry run)
    state_save: str | None = None  # what happened to the gateway's own state save
    capture_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.to_dict(), "plan": self.plan.to_dict(), "report_lost": self.report_lost,
                "method": self.method, "state_save": self.state_save, "capture_s": self.capture_s,
                "report": self.report.to_dict() if self.report else None}

    def _repr_markdown_(self) -> str:
        text = self.action._repr_markdown_()
        if self.action.dry_run:
            text += "\n\n" + self.plan._repr_markdown_()
        if self.report is not None:
            text += f"\n\n{self.report.summary}"
        return text


def _start_time(pid: int) -> float | None:
    """The process's start time (psutil ``create_time``), None when there is no such process."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


def _capture_plan(pid: int, started: float | None, *, host: str, port: int, timeout_s: float, where: str,
                  restart_name: str | None, method: str) -> Plan:
    """The capture plan; its target (hence its id) names the pid *and* its start time, so a plan id
    confirmed for one process never applies to another that reused the pid."""
    when = (datetime.fromtimestamp(started, tz=UTC).isoformat(timespec="milliseconds") if started is not None
            else "not running")
    return Plan(action="capture-leak-report", target=f"pid {pid} (started {when}) ({host}:{port})", steps=(
        *plan_steps(pid, port=port, host=host, method=method, timeout_s=timeout_s),
        f"collect the new log text from {where} and parse the leak report",
        f"restart via {restart_name}()" if restart_name else "no restart (none given)",
    ))


def capture_leak_report(*, pid: int, port: int, host: str = "127.0.0.1", log_source: LogSource,
                        timeout_s: float = 10.0, restart: Callable[[], object] | None = None,
                        execute: bool = False, confirm: str | None = None,
                        settle_s: float = 1.0, method: str = "auto") -> LeakCapture:
    """Stop the gateway cleanly to get its exit-time leak report; dry run unless confirmed.

    ``log_source`` is a log file to tail or a callable returning new log text. ``settle_s``
    is how long to keep reading after the exit while new text still arrives (journald lags).
    ``method`` is how accept() is made to fail after the SIGTERM (:mod:`zcnb.leaks.cleanstop`):
    ``auto`` (shutdown-socket, else fd-limit), ``shutdown-socket``, ``fd-limit`` or ``connect``.
    """
    if not isinstance(pid, int) or pid <= 1:
        raise ConfigError(f"invalid pid {pid!r}", hint="pass the gateway's pid (e.g. from `zcnb gateway status`)")
    if not 0 < port < 65536:
        raise ConfigError(f"invalid port {port!r}", hint="pass the gateway's TCP port (default 18789)")
    if method not in METHODS:
        raise ConfigError(f"unknown capture method {method!r}", hint=f"use one of: {', '.join(METHODS)}")
    where = "callable" if callable(log_source) else str(log_source)
    restart_name = getattr(restart, "__name__", type(restart).__name__) if restart else None
    plan = _capture_plan(pid, _start_time(pid), host=host, port=port, timeout_s=timeout_s, where=where,
                         restart_name=restart_name, method=method)
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        return LeakCapture(action=ActionResult(action=plan.action, target=plan.target, dry_run=True, outcome="planned",
                                               commands=plan.steps, plan_id=plan.plan_id,
                                               message="dry run: nothing was done"), plan=plan)
    if not _alive(pid):
        raise ProcessNotFound(f"no running process with pid {pid}", hint="check the pid; the gateway may have exited",
                              pid=pid)
    started = datetime.now(UTC)
    tail = _LogTail(log_source)
    tail.mark()
    messages: list[str] = []
    t0 = time.monotonic()
    stop = clean_stop(pid, port=port, host=host, method=method, timeout_s=timeout_s)
    lost = not stop.exited
    text = tail.read()
    end = time.monotonic() + settle_s
    while time.monotonic() < end:  # keep reading while the log still grows (journald lags the exit)
        time.sleep(0.1)
        more = tail.read()
        if more:
            text += more
            end = time.monotonic() + settle_s / 2
    report = parse_leak_report(text)  # the raw text, in memory only: the report keeps sizes and frames, not lines
    capture_s = time.monotonic() - t0
    red = _redactor()
    how = f"stop method {stop.method}" + (f" (fallback: {stop.fallback_reason})" if stop.fallback_reason else "")
    messages.append(how)
    if lost:
        messages.extend(stop.notes)
    else:
        messages.append(f"pid {pid} exited cleanly {stop.waited_s:.1f} s after SIGTERM; {report.summary}"
                        if report.recognized else
                        f"pid {pid} exited cleanly but the log holds no leak report (no leaks, or not a "
                        "debug-allocator build)")
        messages.extend(n for n in stop.notes if "state save" not in n)
    state_save = None if lost else state_save_outcome(text, stop.method)
    if state_save:
        messages.append(state_save)
    outcome = "partial" if lost else "ok"
    if restart is not None:
        try:
            restart()
            messages.append(f"restarted via {restart_name}()")
        except Exception as exc:  # noqa: BLE001 - user code: record what failed instead of hiding the capture result
            outcome = "failed"
            messages.append(f"restart via {restart_name}() failed: {type(exc).__name__}: {red.redact(str(exc))}")
    action = ActionResult(action=plan.action, target=plan.target, dry_run=False, outcome=outcome, started_at=started,
                          finished_at=datetime.now(UTC), commands=stop.steps, plan_id=plan.plan_id,
                          message="; ".join(messages),
                          details={"report_lost": lost, "stop": stop.to_dict(), "state_save": state_save,
                                   "capture_s": round(capture_s, 3),
                                   "leak_report": report.to_dict() if report.recognized else None})
    return LeakCapture(action=action, plan=plan, report=report if not lost or report.recognized else None,
                       report_lost=lost, method=stop.method, state_save=state_save, capture_s=capture_s)
