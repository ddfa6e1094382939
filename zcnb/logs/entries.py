"""Gateway logs: read log files, summarise activity (skills, tools, errors, restarts).

One line or entry and its level (:class:`LogEntry`, :func:`parse_message`) live in :mod:`zcnb.logs.message`,
journal reading in :mod:`zcnb.logs.journal`, the fast counting engine in :mod:`zcnb.logs.scan`,
redaction in :mod:`zcnb.redact`. Skill names are shown in one canonical form: lower case and
hyphenated (``git_workflow`` and ``git-workflow`` are both ``git-workflow``), the runbook's form.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..exceptions import ConfigError, LogFormatError
from ..files import open_input
from ..redact import Redactor
from .chunks import BINARY_SHARE, ScanConfig, binary_share, other_journal_format, scan_range, sniff_format
from .formats import read_export_file, read_short_file
from .message import (
    LEVELS,
    MAX_LINE,
    LogEntry,
    ReadStats,
    bounded_lines,
    full_unit,
    ident_unit,
    make_entry,
    parse_message,
    plain_level,
    unit_identifier,
)
from .scan import ISO_LINE, Acc, bucket_of, parse_iso, scan_messages
from .summary import LogSummary, summary_from_tallies

__all__ = [  # LogEntry and the line rules live in zcnb.logs.message; re-exported for zcnb.logs
    "LEVELS",
    "LogEntry",
    "LogSummary",
    "bucket_seconds",
    "full_unit",
    "make_entry",
    "parse_message",
    "plain_level",
    "read_log_file",
    "summarize_logs",
    "unit_identifier",
]

_BANNER = b"Main Token:"
PARALLEL_MIN_BYTES = 64 << 20  # smaller files are scanned in-process (forking costs more than it saves)
NATIVE_PARALLEL_MIN_BYTES = 32 << 20  # the C scanner does ~1 GB/s per thread: a second thread pays off above this


def bucket_seconds(bucket: str | float) -> int:
    """``"1min"``, ``"30s"``, ``"5min"``, ``60`` -> whole seconds (>= 1)."""
    if isinstance(bucket, (int, float)) and not isinstance(bucket, bool):
        seconds = float(bucket)
    else:
        import pandas as pd

        try:
            seconds = pd.Timedelta(str(bucket)).total_seconds()
        except (ValueError, TypeError):
            raise ConfigError(f"bucket {bucket!r} is not a duration", hint='use e.g. "30s", "1min", "5min"') from None
    if not seconds >= 1 or seconds != int(seconds):
        raise ConfigError(f"bucket {bucket!r} must be a whole number of seconds >= 1", hint='use e.g. "1min"')
    return int(seconds)


def _open_checked(path: str | os.PathLike[str]) -> Path:
    """``path`` once it is known to open as a log file (the engines open it again, by path)."""
    open_input(path, what="log file", error=LogFormatError, hint="check the path (journalctl -o short-iso > FILE)",
               folder_hint="for journal folders use --directory").close()
    return Path(path)


def _log_format(path: Path) -> str:
    """The format of a log file (:func:`zcnb.logs.chunks.sniff_format`); a file that is binary data, not text,
    is refused (read as lines it would only give lines of no level)."""
    return _sniffed(path)[0]


def _sniffed(path: Path) -> tuple[str, bytes]:
    """:func:`_log_format` and the head of the file it judged."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    fmt = sniff_format(head)
    share = binary_share(head) if fmt == "raw" else 0.0
    if share > BINARY_SHARE:
        raise LogFormatError(f"{path} is not a log: {share:.0%} of its first {len(head)} bytes are binary data "
                             "(NUL, control bytes, invalid UTF-8)",
                             hint="give a text log (journalctl -o short-iso > FILE, or the gateway's stderr), or a "
                                  "saved journalctl -o json / -o export", path=str(path))
    return fmt, head


def read_log_file(path: str | os.PathLike[str], *, unit: str | None = None,
                  redact: Callable[[str], str] | None = None, stats: ReadStats | None = None) -> Iterator[LogEntry]:
    """Stream entries of a ``journalctl -o short-iso`` text log, a raw log (no timestamps), a saved
    ``journalctl -o json`` (read by :func:`zcnb.logs.journal.read_journal_json`) or ``-o export``, or
    journalctl's ``short`` text.

    Invalid UTF-8 is decoded with replacement; lines of other units are skipped when ``unit`` is given
    (short-iso only: raw lines carry no unit). Memory stays bounded: one line at a time, lines cut at 1 MiB
    (longer than ``MAX_LINE``: counted in ``stats.cut_lines``); a time that is not a date or out of range is
    read as none; what a JSON or export reader skips is counted in ``stats``. Binary data is refused
    (:class:`LogFormatError`).
    """
    p = _open_checked(path)
    red = redact if redact is not None else Redactor.create()
    ident = unit_identifier(unit)
    fmt = _log_format(p)
    if fmt == "json":  # a saved journalctl -o json
        from .journal import read_journal_json

        yield from read_journal_json(p, unit=unit, redact=red, stats=stats)
        return
    if fmt in ("export", "short", "json-pretty"):
        yield from _entry_file(p, fmt, unit=unit, redact=red, stats=stats)
        return
    with open(p, "rb") as fh:
        for raw in bounded_lines(fh, MAX_LINE, stats=stats):
            line = raw.rstrip(b"\r\n")[:1 << 20]
            if fmt == "raw":
                if line:
                    yield make_entry(line.decode("utf-8", "replace"), redact=red)
                continue
            m = ISO_LINE.match(line)
            if not m:
                continue  # "-- Boot ... --" markers and continuation lines
            ts_b, _host, ident_b, pid_b, msg = m.groups()
            idt = ident_b.decode("utf-8", "replace")
            if ident is not None and idt != ident:
                continue
            ts = parse_iso(ts_b)
            yield make_entry(msg.decode("utf-8", "replace"),
                             timestamp=datetime.fromtimestamp(ts, UTC) if ts is not None else None,
                             pid=int(pid_b) if pid_b and len(pid_b) < 12 else None,
                             unit=ident_unit(idt), identifier=idt, redact=red)


def _entry_matches(entry: LogEntry, unit: str, ident: str | None) -> bool:
    return _unit_matches(entry.unit, entry.identifier, unit, ident)


def _unit_matches(entry_unit: str | None, entry_ident: str | None, unit: str, ident: str | None) -> bool:
    if entry_unit:
        return entry_unit == unit
    return entry_ident == ident


def _summarize_entries(entries: Iterable[LogEntry], *, width: int, unit: str | None,
                       stats: ReadStats | None = None) -> Acc:
    acc = Acc()
    ident = unit_identifier(unit)
    cur: int | None = None
    msgs: list[bytes] = []
    tss: list[float | None] = []
    seqs: list[int] = []
    pids: list[int | None] = []
    for e in entries:
        if not isinstance(e, LogEntry):
            raise ConfigError(f"summarize_logs got a {type(e).__name__}, not a LogEntry",
                              hint="pass a log file path or entries from read_journal()/read_log_file()")
        if unit and not _entry_matches(e, unit, ident):
            continue
        ts = e.timestamp.timestamp() if e.timestamp is not None else None
        msg = e.message.encode("utf-8", "replace")
        seq = acc.lines
        acc.lines += 1 + msg.count(b"\n")  # each line of a multi-line message is a line
        acc.see_time(ts)
        acc.see_pid(ts, e.pid, seq)
        if e.priority is not None:
            acc.priorities[e.priority] += 1
        if e.pid is None and _BANNER in msg:
            for k, part in enumerate(msg.split(b"\n")):
                if _BANNER in part:
                    acc.see_banner(ts, seq + k)
        bb = bucket_of(ts, width) if ts is not None else None
        if bb != cur or len(msgs) >= 50_000:  # bounded block size
            scan_messages(acc, msgs, tss, seqs, pids, bucket=cur)
            msgs, tss, seqs, pids, cur = [], [], [], [], bb
        msgs.append(msg)
        tss.append(ts)
        seqs.append(seq)
        pids.append(e.pid)
    scan_messages(acc, msgs, tss, seqs, pids, bucket=cur)
    if stats is not None:  # what the reader of these entries skipped (complete once they are consumed)
        acc.unreadable += stats.unreadable
        acc.bad_times += (sum(n for (u, i), n in stats.bad_time_units.items() if _unit_matches(u, i, unit, ident))
                          if unit else stats.bad_times)
        acc.cut_lines += stats.cut_lines
    return acc


def _entry_file(path: Path, fmt: str, *, unit: str | None, redact: Callable[[str], str],
                stats: ReadStats | None = None) -> Iterator[LogEntry]:
    if fmt == "export":
        want = full_unit(unit)
        return (e for e in read_export_file(path, redact=redact, stats=stats) if want is None or e.unit == want)
    if fmt == "json-pretty":
        from .journal import read_journal_json_pretty

        return read_journal_json_pretty(path, unit=unit, redact=redact, stats=stats)
    return read_short_file(path, unit=unit, redact=redact, stats=stats)


_ENTRY_FORMATS = {"short": "journalctl's short format (no year: lines read without times, no time buckets; "
                           "use journalctl -o short-iso or -o json for them)",
                  "json-pretty": "journalctl -o json-pretty: entries over several lines, read one by one (-o json is "
                                 "read by the C scanner, much faster)"}


def _unredacted(text: str) -> str:
    """Counting reads what the gateway wrote; only what is shown (error examples, crashes) is redacted."""
    return text


ENGINES = ("auto", "native", "python")


def _raw_notes(head: bytes, unit: str | None) -> list[str]:
    """What reading a file (of this head) as raw lines leaves out, said plainly: journalctl output in a format whose
    prefix zcnb does not read (short-full, short-unix, ...), or a unit filter that raw lines cannot honour."""
    other = other_journal_format(head)
    if other:
        return [f"the lines look like journalctl -o {other} output, read as raw lines: a level is found only at a "
                "line's start, so levels, pids, restarts" + (" and the unit filter" if unit else "") + " are not "
                "read (skills are); save the log with journalctl -o short-iso (or -o json, or the default short)"]
    if unit:
        return ["raw lines (no journalctl prefix) carry no unit: every line is counted, the unit filter does not apply"]
    return []


def _summarize_file(path: Path, *, width: int, unit: str | None, workers: int | None,
                    engine: str, meanwhile: Callable[[], object] | None = None) -> tuple[Acc, list[str]]:
    """Scan a text log; returns the tallies and its notes: what its format leaves out, if anything, then which engine
    ran (and why)."""
    from .native import MODES, NativeGaveWay, native_status, scan_file_native

    fmt, head = _sniffed(path)
    ident = unit_identifier(unit)
    cfg = ScanConfig(fmt=fmt, width=width, ident=ident.encode() if ident and fmt != "raw" else None,
                     unit=unit.encode() if unit and fmt in ("json", "export") else None)
    notes = _raw_notes(head, unit) if fmt == "raw" else []
    caveat = f"; {_ENTRY_FORMATS[fmt]}" if fmt in _ENTRY_FORMATS else ""  # journalctl's short text: no times
    size = path.stat().st_size
    n = workers if workers is not None else min(os.cpu_count() or 1, 4)
    why = "requested"
    if engine != "python" and fmt not in MODES:
        why = "the C scanner does not read this format"
    elif engine != "python":
        ok, err = native_status()
        if not ok and engine == "native":
            raise ConfigError(f"the native log scanner is not available ({err})",
                              hint="install a C compiler and run `python -m pip install -e .`, or use engine='python'")
        if ok:
            threads = n if size >= NATIVE_PARALLEL_MIN_BYTES else 1
            try:
                acc = scan_file_native(str(path), size, cfg, threads=threads, meanwhile=meanwhile)
                return acc, [*notes, f"engine: native (C scanner, {threads} thread{'s' if threads > 1 else ''}{caveat})"]
            except NativeGaveWay as exc:
                why = f"C scanner gave way: {exc}"
        else:
            why = f"C scanner not built: {err}"
    if fmt in _ENTRY_FORMATS:  # read entry by entry, as read_log_file reads it
        stats = ReadStats()
        entries = _entry_file(path, fmt, unit=None, redact=_unredacted, stats=stats)
        return (_summarize_entries(entries, width=width, unit=unit, stats=stats),
                [*notes, f"engine: python ({why}{caveat})"])
    return _summarize_file_python(path, size=size, cfg=cfg, n=n), [*notes, f"engine: python ({why})"]


def _summarize_file_python(path: Path, *, size: int, cfg: ScanConfig, n: int) -> Acc:
    if cfg.fmt in ("json", "export"):  # a saved journalctl -o json / -o export: its entries, as zcnb reads them
        from .journal import read_journal_json

        unit = cfg.unit.decode() if cfg.unit is not None else None
        stats = ReadStats()
        entries = (read_journal_json(path, redact=_unredacted, stats=stats) if cfg.fmt == "json"
                   else _entry_file(path, "export", unit=None, redact=_unredacted, stats=stats))
        return _summarize_entries(entries, width=cfg.width, unit=unit, stats=stats)
    if size < PARALLEL_MIN_BYTES or n <= 1:
        return scan_range(str(path), 0, size, cfg)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    bounds = [size * i // n for i in range(n + 1)]
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(scan_range, [str(path)] * n, bounds[:-1], bounds[1:], [cfg] * n))
    acc = parts[0]
    for part in parts[1:]:
        acc.merge(part)
    return acc


def summarize_logs(source: str | os.PathLike[str] | Iterable[LogEntry], *, bucket: str | int = "1min",
                   unit: str | None = None, redact: Callable[[str], str] | None = None,
                   workers: int | None = None, engine: str = "auto", stats: ReadStats | None = None) -> LogSummary:
    """Summarise a log: skills, tools, levels, top errors, restarts, allocator reports, per-bucket counts.

    ``source`` is a log file path (``journalctl -o short-iso`` text, raw lines or a saved ``journalctl -o json``;
    read in large chunks, in ``workers`` threads/processes for big files) or an iterable of :class:`LogEntry` (e.g. from
    :func:`zcnb.logs.journal.read_journal`). Only ``unit``'s lines count when it is given.
    ``engine`` (text logs): ``"auto"`` (the C scanner when built, else Python), ``"native"``, ``"python"``;
    both give identical results, and the summary's notes say which one ran. ``stats``: for entries, what their
    reader skipped (e.g. ``read_journal_json(..., stats=stats)``), reported in the summary as a file's own are.
    Lines or entries that cannot be read, times out of range and cut lines are counted and noted, never dropped
    silently; a file of binary data is refused (:class:`LogFormatError`).
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is not one of {', '.join(ENGINES)}", hint='use engine="auto"')
    width = bucket_seconds(bucket)
    reds: list[Callable[[str], str]] = [redact] if redact is not None else []
    unit_full = full_unit(unit)
    if isinstance(source, (str, os.PathLike)):
        path = _open_checked(source)
        acc, notes = _summarize_file(path, width=width, unit=unit_full, workers=workers, engine=engine,
                                     meanwhile=None if reds else lambda: reds.append(Redactor.create()))
        label = str(path)
    else:
        acc = _summarize_entries(source, width=width, unit=unit_full, stats=stats)
        label, notes = "entries", ["engine: python (log entries)"]
    red = reds[0] if reds else Redactor.create()  # the default rules compile while the C scanner reads
    summary = summary_from_tallies(acc, width=width, unit=unit_full, source=label, redact=red)
    return dataclasses.replace(summary, notes=(*summary.notes, *notes))
