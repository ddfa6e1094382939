"""Read journald entries (``journalctl -o json``, streamed) and write journal files for tests and demos.

``read_journal`` runs ``journalctl -o export`` (argv list, no shell; the export format is ~2.5x cheaper
for journalctl to write than JSON and cheaper to parse, see :mod:`zcnb.logs.journal_export`) and parses its
output in 1 MiB blocks while journalctl keeps writing, so memory stays bounded. As root, or for journal files/folders, a user unit is matched with
``_SYSTEMD_USER_UNIT=U`` (``--user-unit`` would add ``_UID=<caller>`` and miss other users' entries).
``--since``/``--until`` go as ``@<epoch>`` because journalctl reads bare times as local time.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError, LogFormatError
from ..files import open_input
from ..redact import Redactor
from ..units import to_epoch
from .message import MAX_LINE, LogEntry, ReadStats, bounded_lines, full_unit, make_entry
from .journal_export import EXPORT_BLOCK, EntryBuilder, export_records, usec_datetime

__all__ = [
    "JOURNAL_REMOTE",
    "LogTail",
    "entry_from_json",
    "export_entry",
    "journal_argv",
    "read_journal",
    "read_journal_json",
    "read_journal_json_pretty",
    "stamped_to_export",
    "write_journal",
]

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
_FIELDS = "MESSAGE,_PID,PRIORITY,_SYSTEMD_USER_UNIT,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER"


def journal_argv(unit: str | None, *, user: bool = True, since: Any = None, until: Any = None,
                 files: Iterable[str | os.PathLike[str]] | None = None, directory: str | os.PathLike[str] | None = None,
                 journalctl: str = "journalctl", match_user_unit: bool | None = None,
                 fields: str | None = _FIELDS, output: str = "export", matches: Iterable[str] = ()) -> list[str]:
    """The ``journalctl`` command line :func:`read_journal` runs (``output="json"``: the JSON form).

    ``matches`` are extra journalctl match arguments appended as given (``FIELD=value`` or ``+``).
    """
    argv = [journalctl, "-o", output, "--all", "--no-pager"]
    if fields:
        argv.append(f"--output-fields={fields}")
    file_list = [str(f) for f in (files or [])]
    for f in file_list:
        argv.append(f"--file={f}")
    if directory:
        argv.append(f"--directory={directory}")
    offline = bool(file_list or directory)
    if user and not offline and not _is_root() and not match_user_unit:
        argv.append("--user")
    s, u = to_epoch(since), to_epoch(until)
    if s is not None:
        argv.append(f"--since=@{s:.6f}")
    if u is not None:
        argv.append(f"--until=@{u:.6f}")
    unit = full_unit(unit)
    positional = []  # matches, after "--": a value starting with "-" is never read as an option
    if unit:
        match = match_user_unit if match_user_unit is not None else (offline or _is_root())
        if not user:
            if offline:
                positional.append(f"_SYSTEMD_UNIT={unit}")
            else:
                argv.append(f"--unit={unit}")
        elif match:
            positional.append(f"_SYSTEMD_USER_UNIT={unit}")
        else:
            argv.append(f"--user-unit={unit}")
    positional += list(matches)
    return argv + ["--", *positional] if positional else argv


def _is_root() -> bool:
    return os.geteuid() == 0


def _text(value: Any) -> str | None:
    """A journal JSON field: string, byte array (non-UTF-8, decoded with replacement), list (repeated field)."""
    if value is None or value.__class__ is str:
        return value  # type: ignore[no-any-return,unused-ignore]
    if isinstance(value, list):
        if all(isinstance(v, int) and 0 <= v < 256 for v in value):
            return bytes(value).decode("utf-8", "replace")
        parts = [_text(v) for v in value]  # a field given several times: keep the first
        return next((p for p in parts if p is not None), None)
    return str(value)


def _int(value: Any) -> int | None:
    if value.__class__ is str and value.isascii() and value.isdigit():
        return int(value)
    t = _text(value)
    try:
        return int(t) if t is not None else None
    except ValueError:
        return None


def entry_from_json(obj: dict[str, Any], *, redact: Callable[[str], str], stats: ReadStats | None = None) -> LogEntry:
    """One ``journalctl -o json`` object as a :class:`LogEntry` (message redacted); a time out of range is read as
    none and counted in ``stats.bad_times``."""
    usec = _int(obj.get("__REALTIME_TIMESTAMP"))
    ts = usec_datetime(usec)
    unit = _text(obj.get("_SYSTEMD_USER_UNIT")) or _text(obj.get("_SYSTEMD_UNIT"))
    ident = _text(obj.get("SYSLOG_IDENTIFIER"))
    if ts is None and usec is not None and stats is not None:
        stats.bad_time(unit, ident)
    return make_entry(_text(obj.get("MESSAGE")) or "", timestamp=ts, pid=_int(obj.get("_PID")), unit=unit,
                      identifier=ident, priority=_int(obj.get("PRIORITY")), redact=redact)


def _parse_lines(lines: Iterable[bytes], *, redact: Callable[[str], str], stats: ReadStats) -> Iterator[LogEntry]:
    """Entries of JSON records, one a line: ``-o json``, ``-o json-seq`` (an RS byte first) or ``-o json-sse``
    (``data: `` first)."""
    loads = json.JSONDecoder().decode
    for raw in lines:
        if not raw.strip():
            continue
        if len(raw) - raw.endswith(b"\n") > MAX_LINE:  # longer than MAX_LINE (the reader's limit is one more)
            stats.unreadable += 1
            continue
        if raw[:1] == b"\x1e":  # RFC 7464 record separator (json-seq)
            raw = raw[1:]
        elif raw[:6] == b"data: ":  # server-sent event (json-sse)
            raw = raw[6:]
        try:
            obj = loads(raw.decode("utf-8", "replace"))
        except (ValueError, RecursionError):  # cut short, not JSON, or nested deeper than the parser goes
            stats.unreadable += 1
            continue
        if isinstance(obj, dict):
            yield entry_from_json(obj, redact=redact, stats=stats)
        else:
            stats.unreadable += 1


def _pretty_objects(fh: Any, stats: ReadStats) -> Iterator[bytes]:
    """The objects of ``journalctl -o json-pretty`` (``{`` and ``}`` on lines of their own, a field a line), each as
    one text; an object over ``MAX_LINE`` bytes is counted in ``stats.unreadable``, and lines outside objects are
    given as they are (a one-line object is read, anything else is unreadable)."""
    block: list[bytes] = []
    size = 0
    for raw in bounded_lines(fh, MAX_LINE + 1):
        line = raw.strip()
        if not block and not size:
            if line == b"{":
                block, size = [raw], len(raw)
            elif line:
                yield raw
            continue
        size += len(raw)
        if size <= MAX_LINE:
            block.append(raw)
        else:
            block = []  # too big: its lines are dropped as they come
        if line == b"}":  # a string value's "}" is on its field's line, never alone
            if block:
                yield b"".join(block)
            else:
                stats.unreadable += 1
            block, size = [], 0
    if block or size:  # cut short: the last object never ended
        stats.unreadable += 1


def read_journal_json_pretty(path: str | os.PathLike[str], *, unit: str | None = None,
                             redact: Callable[[str], str] | None = None,
                             stats: ReadStats | None = None) -> Iterator[LogEntry]:
    """Stream a saved ``journalctl -o json-pretty`` (each entry an object over several lines), as
    :func:`read_journal_json` reads ``-o json``; an object that cannot be read is counted in ``stats.unreadable``."""
    p = Path(path)
    red = redact if redact is not None else Redactor.create()
    want = full_unit(unit)
    counts = stats if stats is not None else ReadStats()
    with open_input(p, what="journal export", error=LogFormatError,
                    hint="create it with journalctl -o json-pretty > FILE (or -o json)") as fh:
        for e in _parse_lines(_pretty_objects(fh, counts), redact=red, stats=counts):
            if want is None or e.unit == want:
                yield e


def read_journal_json(path: str | os.PathLike[str], *, unit: str | None = None,
                      redact: Callable[[str], str] | None = None, stats: ReadStats | None = None) -> Iterator[LogEntry]:
    """Stream a saved ``journalctl -o json`` export (one JSON object a line; ``-o json-seq`` and ``-o json-sse``
    records too).

    Lines that cannot be read (not JSON, not an object, nested too deep, longer than ``MAX_LINE``) are skipped
    and counted in ``stats.unreadable``; times out of range in ``stats.bad_times`` (the entry is read without one).
    Memory stays bounded: one line at a time, at most ``MAX_LINE`` + 1 bytes of it.
    """
    p = Path(path)
    red = redact if redact is not None else Redactor.create()
    want = full_unit(unit)
    counts = stats if stats is not None else ReadStats()
    with open_input(p, what="journal export", error=LogFormatError, hint="create it with journalctl -o json > FILE") as fh:
        for e in _parse_lines(bounded_lines(fh, MAX_LINE + 1), redact=red, stats=counts):
            if want is None or e.unit == want:
                yield e


def read_journal(unit: str | None = "zeptoclaw-gateway.service", *, user: bool = True, since: Any = None,
                 until: Any = None, files: Iterable[str | os.PathLike[str]] | None = None,
                 directory: str | os.PathLike[str] | None = None, journalctl: str = "journalctl",
                 match_user_unit: bool | None = None, redact: Callable[[str], str] | None = None,
                 require_entries: bool = True, matches: Iterable[str] = (),
                 stats: ReadStats | None = None) -> Iterator[LogEntry]:
    """Stream the unit's journal entries by running ``journalctl -o export`` (bounded memory).

    A cut last entry (journalctl stopped mid-entry) is dropped and counted in ``stats.unreadable``, times out of
    range in ``stats.bad_times``.

    Raises :class:`LogFormatError` when journalctl is missing, cannot read the journal, or (with
    ``require_entries``) finds no entry for the unit.
    """
    files = [str(f) for f in files] if files else None
    for f in files or []:
        if not glob.glob(str(f)):
            raise LogFormatError(f"journal file {f} does not exist", hint="check the --file path", path=f)
    if directory is not None and not Path(directory).is_dir():
        raise LogFormatError(f"journal folder {directory} does not exist", hint="check the --directory path",
                             path=str(directory))
    exe = shutil.which(journalctl)
    if exe is None:
        raise LogFormatError(f"{journalctl} is not installed or not on PATH",
                             hint="install systemd's journalctl, or export the log elsewhere and use --text FILE")
    argv = journal_argv(unit, user=user, since=since, until=until, files=files, directory=directory,
                        journalctl=exe, match_user_unit=match_user_unit, matches=matches)
    counts = stats if stats is not None else ReadStats()
    build = EntryBuilder(redact if redact is not None else Redactor.create(), stats=counts)
    n = 0
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            bufsize=0)
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        _widen_pipe(fd)

        def read(size: int) -> bytes:
            return os.read(fd, size)

        for records in export_records(read, block=EXPORT_BLOCK, stats=counts):
            entries = build.entries(records)
            n += len(entries)
            yield from entries
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    _check(rc, err, n, unit=full_unit(unit), require_entries=require_entries, argv=argv)


def _widen_pipe(fd: int) -> None:
    """Let journalctl run up to 1 MiB ahead while Python parses (the default pipe holds 64 KiB)."""
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), EXPORT_BLOCK)
    except OSError:  # over /proc/sys/fs/pipe-max-size for this user: the default still works
        pass


def _check(rc: int, err: str, n: int, *, unit: str | None, require_entries: bool, argv: list[str]) -> None:
    msg = err.strip().splitlines()[-1] if err.strip() else ""
    low = err.lower()
    if "permission" in low or "insufficient permissions" in low:
        raise LogFormatError(f"journalctl could not read the journal: {msg}",
                             hint="run as the unit's user, or add yourself to the systemd-journal (or adm) group")
    if rc != 0:
        raise LogFormatError(f"journalctl failed (exit {rc}): {msg or 'no message'}",
                             hint="check the unit name and --file/--directory arguments", returncode=rc)
    if n == 0 and require_entries:
        where = "the given journal files" if any(a.startswith(("--file", "--directory")) for a in argv) else "the journal"
        raise LogFormatError(f"no journal entries for unit {unit or '(any)'} in {where}"
                             + (f" ({msg})" if msg else ""),
                             hint="is the unit name right (systemctl --user list-units 'zeptoclaw*')? "
                                  "widen --since/--until, or use --user/--system as appropriate", unit=unit)


# --- writing journal files (tests, demos, bundled sample) -------------------------------------------
def export_entry(fields: dict[str, str | bytes | int]) -> bytes:
    """One entry in the journal export format; values with newlines or non-UTF-8 bytes use the binary form."""
    out = bytearray()
    for key, value in fields.items():
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        binary = b"\n" in data
        if not binary:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                binary = True
        if binary:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out + b"\n")


def write_journal(entries: Iterable[dict[str, str | bytes | int]], output: str | os.PathLike[str], *,
                  remote: str = JOURNAL_REMOTE, timeout: float = 600.0) -> list[Path]:
    """Write real journal files with ``systemd-journal-remote --output=OUTPUT -`` (split at ~47 MB).

    Each entry needs ``__REALTIME_TIMESTAMP`` (microseconds) and ``MESSAGE``. Returns the files written.
    """
    exe = remote if os.path.exists(remote) else shutil.which("systemd-journal-remote")
    if exe is None:
        raise LogFormatError("systemd-journal-remote is not installed",
                             hint="apt-get install systemd-journal-remote")
    out = Path(output)
    if out.suffix != ".journal":
        raise ConfigError(f"journal output {out} must end in .journal", hint="name it e.g. gateway.journal")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([exe, f"--output={out}", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        buf = bytearray()
        for fields in entries:
            buf += export_entry(fields)
            if len(buf) > 1 << 20:
                proc.stdin.write(buf)
                buf.clear()
        proc.stdin.write(buf)
        proc.stdin.close()
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        rc = proc.wait(timeout=timeout)
    except BrokenPipeError:
        err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        raise LogFormatError(f"systemd-journal-remote failed (exit {rc}): {err.strip()[-300:]}",
                             hint="check the export entries (each needs __REALTIME_TIMESTAMP and MESSAGE)")
    return sorted(out.parent.glob(out.stem + "*.journal"))


class LogTail:
    """Follow a growing log file in a thread and stamp each new line with its arrival time, as journald does.

    Used to turn the simulated gateway's timestamp-less log into journal entries. Context manager;
    ``lines`` holds ``(epoch_us, line_bytes)`` after :meth:`stop`, unless a ``sink`` is given: then each
    batch of new lines goes to ``sink(epoch_us, lines)`` as it arrives and nothing is kept.
    """

    def __init__(self, path: str | os.PathLike[str], *, poll_s: float = 0.02, from_start: bool = True,
                 sink: Callable[[int, list[bytes]], None] | None = None) -> None:
        import threading

        self.path = Path(path)
        self.poll_s = poll_s
        self.sink = sink
        self.lines: list[tuple[int, bytes]] = []
        self._pos = 0 if from_start else (self.path.stat().st_size if self.path.exists() else 0)
        self._carry = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zcnb-logtail", daemon=True)

    def __enter__(self) -> LogTail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LogTail:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[int, bytes]]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._read()
        return self.lines

    def _read(self) -> None:
        import time

        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._pos)
                data = fh.read()
        except FileNotFoundError:
            return
        if not data:
            return
        self._pos += len(data)
        now = int(time.time() * 1e6)
        parts = (self._carry + data).split(b"\n")
        self._carry = parts.pop()
        if self.sink is not None:
            self.sink(now, [p for p in parts if p])
        else:
            self.lines.extend((now, p) for p in parts if p)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._read()


def stamped_to_export(lines: Iterable[tuple[int, bytes]], *, unit: str = "zeptoclaw-gateway.service",
                      pid: int | None = None, identifier: str | None = None,
                      pids: Callable[[int], int | None] | None = None) -> Iterator[dict[str, str | bytes | int]]:
    """Journal export fields for stamped log lines of one unit (PRIORITY 6 for all, like the real gateway)."""
    ident = identifier or (unit.removesuffix(".service"))
    for usec, line in lines:
        p = pids(usec) if pids is not None else pid
        fields: dict[str, str | bytes | int] = {"__REALTIME_TIMESTAMP": usec, "_SYSTEMD_USER_UNIT": unit,
                                                "SYSLOG_IDENTIFIER": ident, "PRIORITY": 6, "MESSAGE": line}
        if p is not None:
            fields["_PID"] = p
        yield fields
