"""Start, stop and inspect the simulated gateway process from Python.

>>> with SimulatedGateway(profile="real", leak="per_request", leak_kind="unauth") as gw:
...     gw.ground_truth()["leak"]["leaked_bytes_total"]
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ..config import Secret
from ..exceptions import ActionTimeout, CommandFailed, ConfigError, EndpointAuthError, EndpointUnreachable
from ._leaks import LEAK_KINDS, LEAK_MODES

__all__ = ["SimulatedGateway", "StopResult"]

PROFILES = ("real", "runbook")
TOKEN_ENV = "GATEWAY_AUTH_TOKEN"
_PKG_ROOT = str(Path(__file__).resolve().parents[2])  # so `-m zcnb.demo.server` works from any cwd


@dataclass(frozen=True)
class StopResult:
    """How the gateway process ended."""

    pid: int | None
    exit_code: int | None
    clean: bool  # exited by itself after SIGTERM, code 0
    killed: bool  # SIGKILL was needed (or asked for)
    report_lost: bool  # killed: the allocator's exit-time leak report was never written
    duration_s: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _repr_markdown_(self) -> str:
        how = "clean exit" if self.clean else ("killed (SIGKILL)" if self.killed else f"exit code {self.exit_code}")
        lost = " -- leak report lost" if self.report_lost else ""
        return f"**gateway pid {self.pid}**: {how} in {self.duration_s:.2f} s{lost}. {self.note}".strip()


def _reap(holder: list[subprocess.Popen[bytes] | None], workdir: str | None) -> None:
    """Finalizer: never leave a simulator process (or its temp folder) behind."""
    proc = holder[0]
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


class SimulatedGateway:
    """A ``python -m zcnb.demo.server`` child process on 127.0.0.1; see docs/simulator.md."""

    def __init__(
        self, *, profile: str = "real", leak: str = "none", leak_kind: str | None = None,
        leak_bytes: int = 64 * 1024, leak_rate: float = 128 * 1024, leak_period: float = 10.0,
        leak_transient: int = 8 * 1024 * 1024, leak_warmup: float = 20.0,
        token: str | Secret | None = None, port: int = 0, log_path: str | os.PathLike[str] | None = None,
        pid_file: str | os.PathLike[str] | None = None, ignore_sigterm: bool = False, seed: int = 0,
        rate_limit: bool = True, rate_limit_max: int = 100, rate_limit_window_s: float = 60.0,
        error_rate: float = 0.05, name: str = "zeptoclaw-gateway", gpa_scope: str = "gpa",
        health_detail: bool = False, extra_env: dict[str, str] | None = None, start_timeout_s: float = 10.0,
    ) -> None:
        _validate(profile=profile, leak=leak, leak_kind=leak_kind, port=port, numbers={
            "leak_bytes": leak_bytes, "leak_rate": leak_rate, "leak_period": leak_period,
            "leak_transient": leak_transient, "leak_warmup": leak_warmup,
            "rate_limit_max": rate_limit_max, "rate_limit_window_s": rate_limit_window_s, "error_rate": error_rate})
        self.profile, self.leak, self.leak_kind, self.name = profile, leak, leak_kind, name
        self.host = "127.0.0.1"
        self.token = token if isinstance(token, Secret) else Secret(token or secrets.token_urlsafe(24))
        self._port = int(port)
        self._workdir = tempfile.mkdtemp(prefix="zcnb-sim-")
        self.log_path = Path(log_path) if log_path else Path(self._workdir) / "gateway.log"
        self.pid_file = Path(pid_file) if pid_file else Path(self._workdir) / "gateway.pid"
        self._port_file = Path(self._workdir) / "port"
        self._stderr_path = Path(self._workdir) / "stderr.log"
        self._extra_env = dict(extra_env or {})
        self.start_timeout_s = start_timeout_s
        self._opts: list[str] = [
            "--profile", profile, "--leak", leak, "--leak-bytes", str(int(leak_bytes)),
            "--leak-rate", repr(float(leak_rate)), "--leak-period", repr(float(leak_period)),
            "--leak-transient", str(int(leak_transient)), "--leak-warmup", repr(float(leak_warmup)),
            "--rate-limit", str(int(rate_limit_max) if rate_limit else 0), "--rate-window", repr(float(rate_limit_window_s)),
            "--error-rate", repr(float(error_rate)), "--seed", str(int(seed)), "--gpa-scope", gpa_scope,
        ]
        if leak_kind:
            self._opts += ["--leak-kind", leak_kind]
        if ignore_sigterm:
            self._opts.append("--ignore-sigterm")
        if health_detail:
            self._opts.append("--health-detail")
        self._holder: list[subprocess.Popen[bytes] | None] = [None]
        self._finalizer = weakref.finalize(self, _reap, self._holder, self._workdir)

    # -- identity -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def pid(self) -> int | None:
        proc = self._holder[0]
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def argv(self) -> list[str]:
        """The start command (current port); the token travels in :meth:`supervisor_env`, never here."""
        return [sys.executable, "-m", "zcnb.demo.server", "--name", self.name, "--port", str(self._port),
                "--port-file", str(self._port_file), "--pid-file", str(self.pid_file),
                "--log-file", str(self.log_path), *self._opts]

    def supervisor_env(self) -> dict[str, str]:
        """Environment additions the start command needs. Holds the token in clear: do not log it."""
        pythonpath = os.pathsep.join(p for p in (_PKG_ROOT, os.environ.get("PYTHONPATH", "")) if p)
        return {**self._extra_env, "PYTHONPATH": pythonpath, TOKEN_ENV: self.token.reveal()}

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Self:
        """Start the process and wait until its port accepts connections."""
        if self.running:
            raise ConfigError(f"simulated gateway already running (pid {self.pid})", hint="call stop() or restart()")
        self._port_file.unlink(missing_ok=True)
        fd = os.open(self._stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(
                [*self.argv, "--exit-with-parent"], env={**os.environ, **self.supervisor_env()},
                stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True, close_fds=True)
        finally:
            os.close(fd)
        self._holder[0] = proc
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise CommandFailed(
                    f"simulated gateway exited with code {code} while starting: {self._tail()}",
                    hint="check the options (and that the port is free)", exit_code=code)
            port = self._read_port()
            if port and _answers(self.host, port):
                self._port = port
                return self
            time.sleep(0.02)
        self.kill()
        raise ActionTimeout(f"simulated gateway did not listen within {self.start_timeout_s:.0f} s: {self._tail()}",
                            hint="the machine may be overloaded: raise start_timeout_s")

    def stop(self, timeout: float = 5.0) -> StopResult:
        """The clean stop (:func:`zcnb.leaks.cleanstop.clean_stop`): SIGTERM, then make accept() fail (the real
        profile, like the real gateway, looks at the flag only then), wait; SIGKILL after ``timeout``."""
        from ..leaks.cleanstop import clean_stop

        proc = self._holder[0]
        t0 = time.monotonic()
        if proc is None or proc.poll() is not None:
            return StopResult(pid=proc.pid if proc else None, exit_code=proc.returncode if proc else None,
                              clean=False, killed=False, report_lost=False, duration_s=0.0, note="was not running")
        # The simulator writes its leak report in well under a second; its threads keep doing I/O while it
        # runs, so the real binary's long "still writing its report" grace would only delay the SIGKILL.
        res = clean_stop(proc.pid, port=self._port, host=self.host, timeout_s=timeout, kill_after=False,
                         report_grace_s=timeout)
        if res.exited:
            code = proc.wait(timeout=10)
            return StopResult(pid=proc.pid, exit_code=code, clean=code == 0, killed=False, report_lost=False,
                              duration_s=time.monotonic() - t0, note=f"SIGTERM, then stop method {res.method}")
        result = self.kill()
        return StopResult(pid=result.pid, exit_code=result.exit_code, clean=False, killed=True, report_lost=True,
                          duration_s=time.monotonic() - t0,
                          note=f"no exit {timeout:.1f} s after SIGTERM: killed; the allocator's leak report is lost")

    def kill(self) -> StopResult:
        """SIGKILL (the leak report is lost)."""
        proc = self._holder[0]
        t0 = time.monotonic()
        if proc is None or proc.poll() is not None:
            return StopResult(pid=proc.pid if proc else None, exit_code=proc.returncode if proc else None,
                              clean=False, killed=False, report_lost=False, duration_s=0.0, note="was not running")
        proc.kill()
        code = proc.wait(timeout=10)
        return StopResult(pid=proc.pid, exit_code=code, clean=False, killed=True, report_lost=True,
                          duration_s=time.monotonic() - t0, note="SIGKILL")

    def restart(self, timeout: float = 5.0) -> StopResult:
        """Stop (clean if possible) and start again on the same port; returns how the old process ended."""
        result = self.stop(timeout)
        self.start()
        return result

    def close(self) -> None:
        """Kill if still running and remove the temp folder (logs in it go too)."""
        self._finalizer()

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- inspection ---------------------------------------------------------------------
    def ground_truth(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """What the server itself counted: requests per kind, skills, tools, leaked bytes."""
        conn = http.client.HTTPConnection(self.host, self._port, timeout=timeout)
        try:
            conn.request("GET", "/__ground_truth", headers={"X-Auth-Token": self.token.reveal()})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise EndpointUnreachable(f"simulated gateway at {self.url} did not answer /__ground_truth ({exc})",
                                      hint="is it running? (start() it first)", url=self.url) from None
        finally:
            conn.close()
        if resp.status == 401:
            raise EndpointAuthError("simulated gateway refused the token", hint="use the gateway's own .token",
                                    url=self.url)
        return dict(json.loads(body))

    def log_text(self, *, redact: bool = True) -> str:
        """The gateway's log so far; the banner's token is replaced by ``***`` unless ``redact=False``."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return text.replace(self.token.reveal(), "***") if redact else text

    def leak_report_lines(self) -> list[str]:
        """The Zig allocator leak report lines written at the last clean exit (empty if none)."""
        lines = self.log_text().splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith(("error(gpa): ", "error(DebugAllocator): "))]
        return lines[starts[0]:] if starts else []

    def _read_port(self) -> int | None:
        try:
            return int(self._port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _tail(self, n: int = 8) -> str:
        try:
            lines = self._stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
        except FileNotFoundError:
            return "(no output)"
        return " | ".join(lines).replace(self.token.reveal(), "***") or "(no output)"

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "leak": self.leak, "leak_kind": self.leak_kind, "url": self.url,
                "pid": self.pid, "log_path": str(self.log_path), "pid_file": str(self.pid_file), "token_env": TOKEN_ENV}

    def __repr__(self) -> str:
        leak = f"{self.leak}/{self.leak_kind}" if self.leak_kind else self.leak
        return f"SimulatedGateway(profile={self.profile!r}, leak={leak!r}, url={self.url!r}, pid={self.pid})"

    def _repr_markdown_(self) -> str:
        d = self.to_dict()
        rows = "\n".join(f"| {k} | `{v}` |" for k, v in d.items())
        return f"**Simulated gateway**\n\n| | |\n|---|---|\n{rows}"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _validate(*, profile: str, leak: str, leak_kind: str | None, port: int, numbers: dict[str, float]) -> None:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}", hint=f"use one of {', '.join(PROFILES)}")
    if leak not in LEAK_MODES:
        raise ConfigError(f"unknown leak mode {leak!r}", hint=f"use one of {', '.join(LEAK_MODES)}")
    if leak == "per_request" and leak_kind not in LEAK_KINDS:
        raise ConfigError(f"leak 'per_request' needs leak_kind, got {leak_kind!r}", hint=f"one of {', '.join(LEAK_KINDS)}")
    if leak != "per_request" and leak_kind is not None:
        raise ConfigError(f"leak_kind={leak_kind!r} only applies to leak='per_request'", hint="drop leak_kind")
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"port {port} is out of range", hint="use 0 (a free port) or 1-65535")
    bad = [k for k, v in numbers.items() if not isinstance(v, (int, float)) or v < 0]
    if bad:
        raise ConfigError(f"negative or non-numeric value for {', '.join(bad)}", hint="give numbers >= 0")
    zero = [k for k in ("leak_period", "rate_limit_window_s") if numbers[k] == 0]
    if zero:
        raise ConfigError(f"{', '.join(zero)} must be > 0 seconds", hint="e.g. leak_period=10, rate_limit_window_s=60")
