"""systemd --user backend: ``systemctl --user`` and ``journalctl`` through an injectable command runner.

Tests feed it captured real output (a systemd manager must never be started on the test machines).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import DEFAULT_UNITS, check_unit
from ..exceptions import ActionTimeout, CommandFailed, ServiceError, ServicePermissionError, UnitNotFound
from .base import CommandRunner, HealthCheck, ServiceStatus, StepOutcome, format_command, redact_line, run_command

__all__ = [
    "SHOW_PROPERTIES",
    "SystemdUserBackend",
    "default_health_checks",
    "parse_journal_json",
    "parse_show",
    "parse_status_text",
    "parse_systemd_bytes",
    "parse_systemd_timestamp",
    "user_manager_reachable",
]

SHOW_PROPERTIES = ("MainPID", "ActiveState", "SubState", "MemoryCurrent", "MemoryMax", "ActiveEnterTimestamp",
                   "NRestarts", "LoadState", "FragmentPath", "Result")
_UINT64_MAX = 2**64 - 1  # older systemd prints this instead of "[not set]" / "infinity"
_KILL_WARNING = ("restart of {unit} did not finish within {t:.0f} s: killed it with SIGKILL and started it again. "
                 "WARNING: the allocator's exit-time leak report (error(gpa)/DebugAllocator) is lost for this run.")
_PERMISSION_MARKERS = ("failed to connect to bus", "access denied", "interactive authentication required",
                       "permission denied", "not permitted")
_NOT_FOUND_MARKERS = ("not found", "could not be found", "not loaded", "no such unit", "does not exist")


def user_manager_reachable(runtime_dir: str | None = None) -> tuple[bool, str]:
    """Whether ``systemctl --user`` can reach a user manager here: its private socket (or the user bus) in
    ``$XDG_RUNTIME_DIR`` (default ``/run/user/<uid>``). Looks at files only: starts and asks nothing.

    Returns (reachable, why not).
    """
    import stat

    base = Path(runtime_dir or os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    for sock in (base / "systemd" / "private", base / "bus"):
        try:
            if stat.S_ISSOCK(sock.stat().st_mode):
                return True, ""
        except OSError:
            continue
    where = "XDG_RUNTIME_DIR is not set; " if not os.environ.get("XDG_RUNTIME_DIR") else ""
    return False, f"{where}no socket at {base / 'systemd' / 'private'} or {base / 'bus'}"


def default_health_checks(host: str = "127.0.0.1", port: int = 18789) -> dict[str, HealthCheck]:
    """Gateway /health (token) and webhook 127.0.0.1:9000/health (body ``ok``), as TARGET.md describes."""
    return {
        "zeptoclaw-gateway.service": HealthCheck(f"http://{host}:{port}/health", needs_token=True),
        "zeptoclaw-webhook.service": HealthCheck("http://127.0.0.1:9000/health", needs_token=False, expect="text-ok"),
    }


def parse_systemd_bytes(value: str) -> int | None:
    """``MemoryCurrent``/``MemoryMax`` value -> bytes; ``[not set]``, ``infinity``, empty, UINT64_MAX -> None."""
    v = value.strip()
    if not v or v in ("[not set]", "infinity", "[no data]") or v.startswith("["):
        return None
    try:
        n = int(v)
    except ValueError:
        return None
    return None if n >= _UINT64_MAX else n


def parse_systemd_timestamp(value: str) -> datetime | None:
    """``Sat 2026-11-28 10:00:00 UTC`` -> aware datetime; empty or ``n/a`` -> None.

    Zones other than UTC/GMT are abbreviations systemd took from the host's TZ; those are read as host-local time.
    """
    v = value.strip()
    if not v or v == "n/a":
        return None
    m = re.match(r"^(?:\w{3}\s+)?(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2})(?:\.\d+)?(?:\s+(\S+))?$", v)
    if not m:
        return None
    naive = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}")
    tz = (m.group(3) or "").upper()
    if tz in ("UTC", "GMT", "Z"):
        return naive.replace(tzinfo=UTC)
    return naive.astimezone()  # host-local


def parse_show(text: str) -> dict[str, str]:
    """``systemctl show`` key=value lines -> dict (values kept as text)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _size_to_bytes(text: str) -> int | None:
    m = re.match(r"^([\d.]+)([BKMGTP]?)", text.strip())
    if not m:
        return None
    mult = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}[m.group(2)]
    return int(float(m.group(1)) * mult)


def parse_status_text(text: str) -> dict[str, Any]:
    """The header of ``systemctl --user status UNIT`` -> loaded/active/main_pid/memory_bytes and log tail lines."""
    out: dict[str, Any] = {"loaded": None, "active": None, "main_pid": None, "memory_bytes": None, "log_lines": []}
    lines = text.splitlines()
    body_end = len(lines)
    for i, line in enumerate(lines):
        s = line.strip()
        if not s:
            body_end = i
            break
        key, sep, value = s.partition(":")
        if not sep:
            continue
        key = key.strip()
        value = value.strip()
        if key == "Loaded":
            out["loaded"] = value.split(" ", 1)[0]
        elif key == "Active":
            out["active"] = value
        elif key == "Main PID":
            m = re.match(r"(\d+)", value)
            out["main_pid"] = int(m.group(1)) if m else None
        elif key == "Memory":
            out["memory_bytes"] = _size_to_bytes(value)
    out["log_lines"] = [ln for ln in lines[body_end + 1:] if ln.strip()]
    return out


def _message(entry: Mapping[str, Any]) -> str:
    msg = entry.get("MESSAGE", "")
    if isinstance(msg, list):  # journald gives non-UTF-8 messages as a byte array
        return bytes(int(b) & 0xFF for b in msg).decode("utf-8", errors="replace")
    return "" if msg is None else str(msg)


def parse_journal_json(text: str) -> list[dict[str, Any]]:
    """``journalctl -o json`` lines -> [{time, unit, pid, message}] (bad lines skipped: a cut last line is normal)."""
    from ..redact import default_redactor

    red = default_redactor(mask="***")  # one redactor for all lines (building it reads the config)
    out = []
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        ts = entry.get("__REALTIME_TIMESTAMP")
        when = datetime.fromtimestamp(int(ts) / 1e6, tz=UTC) if ts and str(ts).isdigit() else None
        out.append({"time": when, "unit": entry.get("_SYSTEMD_USER_UNIT") or entry.get("_SYSTEMD_UNIT", ""),
                    "pid": entry.get("_PID"), "message": redact_line(_message(entry), redactor=red)})
    return out


class SystemdUserBackend:
    """Control user units through ``systemctl --user`` (never a D-Bus session of our own)."""

    backend = "systemd"

    def __init__(self, *, units: Sequence[str] = DEFAULT_UNITS, runner: CommandRunner = run_command,
                 config_home: str | os.PathLike[str] | None = None,
                 health: Mapping[str, HealthCheck] | None = None, command_timeout_s: float = 15.0) -> None:
        self._units = tuple(units)
        self._runner = runner
        xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        self._config_home = Path(config_home) if config_home else Path(xdg)
        self._health = dict(default_health_checks() if health is None else health)
        self._timeout = command_timeout_s

    @property
    def units(self) -> tuple[str, ...]:
        return self._units

    def health_check(self, unit: str) -> HealthCheck | None:
        return self._health.get(unit)

    # -- command construction ------------------------------------------------------------------
    def argv(self, verb: str, unit: str = "", *extra: str) -> list[str]:
        """The argv of one systemctl verb (``show``/``status``/``start``/``stop``/``restart``/``kill``/``daemon-reload``).

        The unit (checked: never starting with ``-``) always follows ``--``, so it cannot be read as an option.
        """
        if verb == "daemon-reload":
            return ["systemctl", "--user", "daemon-reload"]
        unit = check_unit(unit)
        if verb == "show":
            return ["systemctl", "--user", "show", "-p", ",".join(SHOW_PROPERTIES), "--", unit]
        if verb == "status":
            return ["systemctl", "--user", "status", "--no-pager", "--lines=20", "--", unit]
        if verb == "kill":
            return ["systemctl", "--user", "kill", "-s", "SIGKILL", "--", unit]
        if verb == "journal":
            return ["journalctl", "--no-pager", "-o", "json", *extra, "--", f"_SYSTEMD_USER_UNIT={unit}"]
        return ["systemctl", "--user", verb, "--", unit]

    def commands_for(self, verb: str, unit: str) -> tuple[str, ...]:
        if verb == "reload":
            return (format_command(self.argv("daemon-reload")),)
        return (format_command(self.argv(verb, unit)),)

    # -- running -----------------------------------------------------------------------------------
    def _run(self, argv: list[str], *, timeout_s: float | None = None, unit: str = "",
             ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        t = self._timeout if timeout_s is None else timeout_s
        try:
            proc = self._runner(argv, t)
        except FileNotFoundError:
            raise ServiceError(f"{argv[0]} is not installed on this host",
                               hint="use the process-supervisor backend (backend='supervisor') where there is no systemd",
                               command=format_command(argv)) from None
        except subprocess.TimeoutExpired:
            raise ActionTimeout(f"`{format_command(argv)}` did not finish within {t:.0f} s",
                                hint="the unit may be hung; check `systemctl --user status` and the journal",
                                unit=unit, command=format_command(argv)) from None
        if proc.returncode not in ok_codes:
            self._raise_for(proc, argv, unit)
        return proc

    def _raise_for(self, proc: subprocess.CompletedProcess[str], argv: list[str], unit: str) -> None:
        err = (proc.stderr or proc.stdout or "").strip()
        low = err.lower()
        cmd = format_command(argv)
        first = err.splitlines()[0][:300] if err else f"exit code {proc.returncode}"
        if any(m in low for m in _PERMISSION_MARKERS):
            raise ServicePermissionError(
                f"`{cmd}` was refused: {first}",
                hint="run as the user that owns the units, with XDG_RUNTIME_DIR/DBUS_SESSION_BUS_ADDRESS set "
                     "(e.g. `machinectl shell user@` or `sudo -u USER XDG_RUNTIME_DIR=/run/user/UID ...`)",
                unit=unit, command=cmd)
        if unit and any(m in low for m in _NOT_FOUND_MARKERS):
            raise UnitNotFound(f"unit {unit} does not exist ({first})",
                               hint="check the unit name with `systemctl --user list-units 'zeptoclaw*'`", unit=unit)
        raise CommandFailed(f"`{cmd}` failed with exit code {proc.returncode}: {first}",
                            hint=f"see `systemctl --user status {unit}` and `journalctl --user -u {unit} -n 50`"
                            if unit else "see the command's output", unit=unit, command=cmd,
                            returncode=proc.returncode)

    # -- queries -----------------------------------------------------------------------------------
    def status(self, unit: str) -> ServiceStatus:
        props = parse_show(self._run(self.argv("show", unit), unit=unit).stdout)
        load = props.get("LoadState", "")
        if load in ("not-found", "bad-setting", "error", "masked") or not props:
            raise UnitNotFound(f"unit {unit} is not usable (LoadState={load or 'unknown'})",
                               hint="check the unit name with `systemctl --user list-unit-files 'zeptoclaw*'`",
                               unit=unit, load_state=load)
        pid = int(props.get("MainPID", "0") or 0)
        mem = parse_systemd_bytes(props.get("MemoryCurrent", ""))
        notes = []
        if mem is None:
            notes.append("MemoryCurrent not set (memory accounting off for this unit): read the process RSS instead")
        result = props.get("Result", "")
        if result == "oom-kill":
            notes.append(f"last stop was an OOM kill (Result=oom-kill): the leak already reached the limit; see "
                         f"`journalctl --user -u {unit} | grep -i oom` (stage 03 lists OOM kills)")
        elif result and result != "success":
            notes.append(f"last result: {result}")
        restarts = props.get("NRestarts", "")
        return ServiceStatus(
            unit=unit, backend=self.backend, active=props.get("ActiveState") in ("active", "reloading"),
            active_state=props.get("ActiveState", "unknown"), sub_state=props.get("SubState", ""),
            pid=pid or None, memory_bytes=mem, memory_source="cgroup (MemoryCurrent)" if mem is not None else "",
            memory_max_bytes=parse_systemd_bytes(props.get("MemoryMax", "")),
            active_since=parse_systemd_timestamp(props.get("ActiveEnterTimestamp", "")),
            restarts=int(restarts) if restarts.isdigit() else None, load_state=load,
            fragment_path=props.get("FragmentPath", ""), notes=tuple(notes))

    def status_text(self, unit: str) -> str:
        """``systemctl --user status`` text (exit 3 = inactive is normal; 4 = no such unit)."""
        proc = self._run(self.argv("status", unit), unit=unit, ok_codes=(0, 3))
        return redact_line(proc.stdout)

    def log_lines(self, unit: str, *, lines: int = 50, since: datetime | None = None) -> list[str]:
        extra = ["-n", str(lines)]
        if since is not None:
            extra += ["--since", f"@{int(since.timestamp())}"]
        proc = self._run(self.argv("journal", unit, *extra), unit=unit)
        return [e["message"] for e in parse_journal_json(proc.stdout)]

    # -- actions -----------------------------------------------------------------------------------
    def _state_words(self, unit: str) -> str:
        try:
            st = self.status(unit)
            return f"{st.active_state}/{st.sub_state}" + (f" pid {st.pid}" if st.pid else "")
        except ServiceError as exc:
            return f"unknown ({exc.message})"

    def start(self, unit: str, *, timeout_s: float = 30.0) -> StepOutcome:
        argv = self.argv("start", unit)
        try:
            self._run(argv, timeout_s=timeout_s, unit=unit)
        except CommandFailed as exc:
            raise CommandFailed(f"{exc.message}; {unit} was left {self._state_words(unit)}", hint=exc.hint,
                                unit=unit, command=format_command(argv)) from None
        return StepOutcome((format_command(argv),))

    def stop(self, unit: str, *, timeout_s: float = 30.0) -> StepOutcome:
        argv = self.argv("stop", unit)
        try:
            self._run(argv, timeout_s=timeout_s, unit=unit)
        except ActionTimeout:
            kill = self.argv("kill", unit)
            self._run(kill, unit=unit)
            return StepOutcome((format_command(argv), format_command(kill)),
                               ((f"stop of {unit} hung for {timeout_s:.0f} s: sent SIGKILL; the exit-time leak "
                                 "report is lost"),))
        return StepOutcome((format_command(argv),))

    def restart(self, unit: str, *, timeout_s: float = 30.0) -> StepOutcome:
        """``systemctl --user restart``; when it hangs, the documented kill (SIGKILL) then start path."""
        argv = self.argv("restart", unit)
        try:
            self._run(argv, timeout_s=timeout_s, unit=unit)
            return StepOutcome((format_command(argv),))
        except ActionTimeout:
            pass
        kill, start = self.argv("kill", unit), self.argv("start", unit)
        self._run(kill, unit=unit)
        out = self.start(unit, timeout_s=timeout_s)
        return StepOutcome((format_command(argv), format_command(kill), *out.commands),
                           (_KILL_WARNING.format(unit=unit, t=timeout_s),), {"kill_fallback": True,
                                                                             "start": format_command(start)})

    def reload(self) -> StepOutcome:
        argv = self.argv("daemon-reload")
        self._run(argv)
        return StepOutcome((format_command(argv),))

    # -- drop-ins (``systemctl --user edit`` semantics) --------------------------------------------
    def env_dropin_path(self, unit: str) -> Path:
        return self._config_home / "systemd" / "user" / f"{unit}.d" / "zcnb-debug.conf"

    def render_env_dropin(self, env: dict[str, str]) -> str:
        lines = ["# written by zcnb (debug-logging on); remove with `zcnb debug-logging off`", "[Service]"]
        lines += [f'Environment="{k}={v}"' for k, v in env.items()]
        return "\n".join(lines) + "\n"
