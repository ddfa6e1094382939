"""Process-supervisor backend for hosts without systemd: pid file + start command (argv) + log file.

The same notebooks and CLI drive the simulated gateway through it; tests use it against real processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import Secret
from ..exceptions import CommandFailed, ConfigError, ServicePermissionError, UnitNotFound
from ..files import read_input, write_json, write_private
from .base import HealthCheck, ServiceStatus, StepOutcome, format_command, redact_line

__all__ = ["STOP_METHODS", "ProcessSupervisorBackend", "SupervisedService"]

STOP_METHODS = ("term", "clean")


@dataclass(frozen=True)
class SupervisedService:
    """One supervised program. ``argv`` is the start command (no shell)."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path
    cwd: Path | None = None
    env: Mapping[str, str | Secret] = field(default_factory=dict)  # Secret values are never written to files
    health: HealthCheck | None = None
    # "term": SIGTERM + one connection, SIGKILL after the timeout; "clean": SIGTERM, then make accept() fail
    # (zcnb.leaks.cleanstop) so a gateway that ignores SIGTERM until then exits and prints its leak report.
    stop_method: str = "term"

    def __post_init__(self) -> None:
        if self.stop_method not in STOP_METHODS:
            raise ConfigError(f"service {self.name!r}: unknown stop_method {self.stop_method!r}",
                              hint=f"use one of: {', '.join(STOP_METHODS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "argv": list(self.argv), "pid_file": str(self.pid_file),
                "log_file": str(self.log_file), "cwd": str(self.cwd) if self.cwd else None,
                "env": {k: v for k, v in self.env.items() if not isinstance(v, Secret)},
                "health": self.health.to_dict() if self.health else None, "stop_method": self.stop_method}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SupervisedService:
        try:
            argv = d["argv"]
            if isinstance(argv, str) or not argv:
                raise ConfigError(f"service {d.get('name')!r}: argv must be a non-empty list",
                                  hint='e.g. "argv": ["/usr/bin/zeptoclaw-gateway"]')
            h = d.get("health")
            return cls(name=str(d["name"]), argv=tuple(str(a) for a in argv), pid_file=Path(d["pid_file"]),
                       log_file=Path(d["log_file"]), cwd=Path(d["cwd"]) if d.get("cwd") else None,
                       env={str(k): str(v) for k, v in (d.get("env") or {}).items()},
                       health=HealthCheck(**h) if h else None, stop_method=str(d.get("stop_method") or "term"))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"service entry is missing or has a bad field ({exc})",
                              hint="each service needs name, argv (list), pid_file, log_file") from None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise ServicePermissionError(f"pid file {path} is not readable", hint="run as the service's user",
                                     path=str(path)) from None
    return int(text) if text.isdigit() else None


class ProcessSupervisorBackend:
    """Start/stop/restart/status of programs recorded in pid files, in a configurable order."""

    backend = "supervisor"

    def __init__(self, services: Sequence[SupervisedService], *, run_dir: str | os.PathLike[str],
                 poll_s: float = 0.05, start_check_s: float = 0.5) -> None:
        if not services:
            raise ConfigError("the supervisor needs at least one service", hint="pass services=[SupervisedService(...)]")
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate service names in {names}", hint="give every service its own name")
        self._services = {s.name: s for s in services}
        self._order = tuple(names)
        self.run_dir = Path(run_dir)
        self._poll = poll_s
        self._start_check_s = start_check_s  # a start command that dies within this window is a failed start
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # children we spawned, reaped so they never linger as zombies
        self._log_offsets: dict[str, int] = {}

    # -- config ------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ProcessSupervisorBackend:
        """Read ``{"run_dir": ..., "services": [...]}`` JSON (written by :meth:`to_file`)."""
        p = Path(path)
        raw = read_input(p, what="supervisor file", hint="write one with ProcessSupervisorBackend.to_file")
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise ConfigError(f"supervisor file {p} is not valid JSON ({exc})", hint="fix the file", path=str(p)) from None
        if not isinstance(data, dict) or not isinstance(data.get("services"), list):
            raise ConfigError(f"supervisor file {p} has no 'services' list", hint='{"services": [{...}], "run_dir": ...}')
        return cls([SupervisedService.from_dict(s) for s in data["services"]],
                   run_dir=data.get("run_dir") or p.parent)

    def to_file(self, path: str | os.PathLike[str]) -> Path:
        return write_json(path, {"run_dir": str(self.run_dir), "services": [s.to_dict() for s in self._services.values()]})

    @property
    def units(self) -> tuple[str, ...]:
        return self._order

    def service(self, unit: str) -> SupervisedService:
        try:
            return self._services[unit]
        except KeyError:
            raise UnitNotFound(f"no supervised service named {unit!r}", hint=f"known: {', '.join(self._order)}",
                               unit=unit) from None

    def health_check(self, unit: str) -> HealthCheck | None:
        return self.service(unit).health

    # -- process bookkeeping -----------------------------------------------------------------------
    def _alive(self, pid: int) -> bool:
        child = self._procs.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            self._procs.pop(pid, None)
            return False
        import psutil

        try:
            return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True

    def _owned_pid(self, svc: SupervisedService) -> int | None:
        """The pid from the pid file if that process still runs and is the one the file was written for."""
        pid = _read_pid(svc.pid_file)
        if pid is None or not self._alive(pid):
            return None
        import psutil

        try:
            created = psutil.Process(pid).create_time()
            written = svc.pid_file.stat().st_mtime
        except (psutil.Error, OSError):
            return pid
        # A process started well after the pid file was written is a reused pid: not ours to signal.
        return pid if created <= written + 5.0 else None

    def pid(self, unit: str) -> int | None:
        return self._owned_pid(self.service(unit))

    def status(self, unit: str) -> ServiceStatus:
        svc = self.service(unit)
        raw = _read_pid(svc.pid_file)
        pid = self._owned_pid(svc)
        notes: list[str] = []
        mem = None
        since = None
        if pid is not None:
            import psutil

            try:
                proc = psutil.Process(pid)
                mem = int(proc.memory_info().rss)
                since = datetime.fromtimestamp(proc.create_time(), tz=UTC)
            except psutil.AccessDenied:
                notes.append(f"/proc/{pid} not readable: memory not measured")
            except psutil.NoSuchProcess:
                pid = None
        if pid is None and raw is not None:
            notes.append(f"stale pid file {svc.pid_file} (pid {raw} is not running)")
        state = "active" if pid else ("failed" if raw is not None else "inactive")
        return ServiceStatus(unit=unit, backend=self.backend, active=pid is not None, active_state=state,
                             sub_state="running" if pid else "dead", pid=pid, memory_bytes=mem,
                             memory_source="psutil rss" if mem is not None else "", active_since=since,
                             fragment_path=format_command(svc.argv), notes=tuple(notes))

    # -- commands (for plans) ----------------------------------------------------------------------
    def commands_for(self, verb: str, unit: str) -> tuple[str, ...]:
        svc = self.service(unit)
        start = f"{format_command(svc.argv)} >>{svc.log_file} 2>&1 &  # detached; pid -> {svc.pid_file}"
        stop = f"kill -TERM $(cat {svc.pid_file})  # SIGKILL if still running after the timeout"
        if svc.stop_method == "clean":
            stop = (f"kill -TERM $(cat {svc.pid_file}); shutdown its listening socket (pidfd_getfd; else a lowered "
                    "fd limit + one connection) so accept() fails and it exits cleanly  # SIGKILL after the timeout")
        if verb == "start":
            return (start,)
        if verb == "stop":
            return (stop,)
        if verb == "restart":
            return (stop, start)
        if verb == "kill":
            return (f"kill -KILL $(cat {svc.pid_file})",)
        if verb == "reload":
            return ()
        raise ConfigError(f"unknown verb {verb!r}", hint="start, stop, restart, kill or reload")

    # -- actions -----------------------------------------------------------------------------------
    def _dropin_env(self, unit: str) -> dict[str, str]:
        env: dict[str, str] = {}
        d = self.env_dropin_path(unit).parent
        for f in sorted(d.glob("*.conf")) if d.is_dir() else []:
            for line in f.read_text(encoding="utf-8").splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    k, _, v = line.partition("=")
                    env[k.strip()] = v.strip()
        return env

    def _log_tail(self, svc: SupervisedService, n: int = 5) -> str:
        try:
            lines = svc.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
        except OSError:
            return "(no log)"
        return " | ".join(redact_line(x) for x in lines) or "(log empty)"

    def start(self, unit: str, *, timeout_s: float = 30.0) -> StepOutcome:
        svc = self.service(unit)
        cmd = self.commands_for("start", unit)
        if (pid := self._owned_pid(svc)) is not None:
            return StepOutcome((), (f"{unit} already running (pid {pid}): not started again",))
        svc.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_offsets[unit] = svc.log_file.stat().st_size if svc.log_file.exists() else 0
        own = {k: v.reveal() if isinstance(v, Secret) else v for k, v in svc.env.items()}
        env = {**os.environ, **own, **self._dropin_env(unit)}
        fd = os.open(svc.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            proc = subprocess.Popen(list(svc.argv), stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, cwd=svc.cwd,
                                    env=env, start_new_session=True)
        except OSError as exc:
            raise CommandFailed(f"cannot run the start command of {unit}: {exc.strerror or exc}",
                                hint=f"check argv[0] ({svc.argv[0]}) exists and is executable; {unit} was left stopped",
                                unit=unit, command=cmd[0]) from None
        finally:
            os.close(fd)
        self._procs[proc.pid] = proc
        write_private(svc.pid_file, f"{proc.pid}\n")
        # A start command that dies at once is a failed start, not a running service.
        deadline = time.monotonic() + min(self._start_check_s, timeout_s)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                svc.pid_file.unlink(missing_ok=True)
                self._procs.pop(proc.pid, None)
                raise CommandFailed(f"start command of {unit} exited at once with code {proc.returncode}; "
                                    f"last log lines: {self._log_tail(svc)}",
                                    hint=f"{unit} was left stopped (pid file removed); fix the command or read {svc.log_file}",
                                    unit=unit, command=cmd[0], returncode=proc.returncode)
            time.sleep(self._poll)
        return StepOutcome(cmd, (), {"pid": proc.pid})

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        try:
            if os.getpgid(pid) == pid:  # our own session leader: signal its children too
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise ServicePermissionError(f"not allowed to send {sig.name} to pid {pid}",
                                         hint="run as the service's user", pid=pid) from None

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return True
            time.sleep(self._poll)
        return not self._alive(pid)

    def _nudge(self, svc: SupervisedService) -> None:
        # The real gateway only sees SIGTERM when its accept loop wakes: one connection wakes it.
        if svc.health is None:
            return
        parts = urlsplit(svc.health.url)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=0.5):
                pass
        except OSError:
            pass

    def _endpoint(self, svc: SupervisedService) -> tuple[str, int] | None:
        if svc.health is None:
            return None
        parts = urlsplit(svc.health.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def stop(self, unit: str, *, timeout_s: float = 10.0) -> StepOutcome:
        svc = self.service(unit)
        pid = self._owned_pid(svc)
        if pid is None:
            svc.pid_file.unlink(missing_ok=True)
            return StepOutcome((), (f"{unit} was not running",))
        cmds = [f"kill -TERM {pid}"]
        warnings: list[str] = []
        details: dict[str, Any] = {"stopped_pid": pid, "stop_method": svc.stop_method}
        t0 = time.monotonic()
        end = self._endpoint(svc)
        if svc.stop_method == "clean" and end is not None:
            from ..leaks.cleanstop import clean_stop

            res = clean_stop(pid, host=end[0], port=end[1], timeout_s=timeout_s, kill_after=False)
            cmds = list(res.steps)
            details["clean_stop"] = res.to_dict()
            gone = res.exited
            how = f"SIGTERM, then stop method {res.method}"
        else:
            if svc.stop_method == "clean":
                warnings.append(f"{unit} has no health URL, so its port is unknown: stopped with SIGTERM only")
            self._signal(pid, signal.SIGTERM)
            self._nudge(svc)
            gone = self._wait_gone(pid, timeout_s)
            how = "SIGTERM, then one connection to wake its accept loop"
        waited = time.monotonic() - t0
        details["waited_s"] = round(waited, 2)
        if not gone:
            self._signal(pid, signal.SIGKILL)
            cmds.append(f"kill -KILL {pid}")
            details.update(sigterm_ignored=svc.stop_method != "clean" or end is None, report_lost=True)
            alt = (f"zcnb leaks capture --pid {pid} --port {end[1]} --log {svc.log_file}" if end is not None
                   else "zcnb leaks capture")
            details["clean_alternative"] = alt
            if svc.stop_method == "clean" and end is not None:
                warnings.append(
                    f"{unit} (pid {pid}) did not exit within {waited:.1f} s of SIGTERM and the clean stop ({how}): "
                    "killed it with SIGKILL; its allocator's exit-time leak report is lost (or cut) for this run. "
                    f"Retry with a longer timeout, or capture the report with `{alt}`")
            else:
                warnings.append(
                    f"{unit} (pid {pid}) did not exit on SIGTERM: waited {waited:.1f} s ({how}), then killed it "
                    "with SIGKILL; its allocator's exit-time leak report is lost for this run. The ZeptoClaw gateway "
                    "looks at SIGTERM only when accept() fails, so SIGTERM never stops it: stop it cleanly with "
                    f"`{alt}` (capture action), or give this service stop_method 'clean'")
            if not self._wait_gone(pid, 5.0):
                raise CommandFailed(f"{unit} (pid {pid}) survived SIGKILL", hint="check for a D-state process (ps -o stat)",
                                    unit=unit, pid=pid)
        else:
            details["report_lost"] = False
        child = self._procs.pop(pid, None)
        if child is not None:
            child.wait(timeout=1)
        svc.pid_file.unlink(missing_ok=True)
        return StepOutcome(tuple(cmds), tuple(warnings), details)

    def restart(self, unit: str, *, timeout_s: float = 10.0) -> StepOutcome:
        return self.stop(unit, timeout_s=timeout_s) + self.start(unit, timeout_s=timeout_s)

    def reload(self) -> StepOutcome:
        return StepOutcome((), (), {"note": "supervisor: env drop-ins are read at each start"})

    # -- drop-ins and logs -------------------------------------------------------------------------
    def env_dropin_path(self, unit: str) -> Path:
        """Where the drop-in lives; nothing is created here (a dry run must not create anything)."""
        self.service(unit)
        return self.run_dir / f"{unit}.d" / "zcnb-debug.conf"

    def render_env_dropin(self, env: dict[str, str]) -> str:
        lines = ["# written by zcnb (debug-logging on); remove with `zcnb debug-logging off`"]
        return "\n".join(lines + [f"{k}={v}" for k, v in env.items()]) + "\n"

    def log_lines(self, unit: str, *, lines: int = 50, since: datetime | None = None) -> list[str]:
        """The log tail; with ``since``, only what was written after the last start (plain logs have no times)."""
        svc = self.service(unit)
        try:
            with svc.log_file.open("rb") as fh:
                if since is not None:
                    fh.seek(self._log_offsets.get(unit, 0))
                data = fh.read()
        except FileNotFoundError:
            return []
        text = data.decode("utf-8", errors="replace")
        return [redact_line(x) for x in text.splitlines()[-lines:]]

    def close(self) -> None:
        """Stop every service this object started (used by cleanup hooks)."""
        for unit in reversed(self._order):
            if self._owned_pid(self._services[unit]) is not None:
                self.stop(unit, timeout_s=3.0)
