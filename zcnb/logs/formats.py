"""Log file formats read entry by entry (no chunk engine): a saved ``journalctl -o export`` and journalctl's
default ``short`` text (``Dec 04 16:34:24 host ident[pid]: message``).

Both are summarised through the per-entry path of :func:`zcnb.logs.summarize_logs` (the Python engine), with the
same counting rules as the other formats. journalctl's ``short`` format prints no year and no time zone, so its
lines carry no time here: counts, levels, crashes and restarts are exact, per-bucket counts need
``journalctl -o short-iso`` (or ``-o json``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

from .journal_export import EntryBuilder, export_records
from .message import MAX_LINE, LogEntry, ReadStats, bounded_lines, ident_unit, make_entry, unit_identifier

__all__ = ["EXPORT_START", "SHORT_LINE", "read_export_file", "read_short_file"]

# journalctl -o short: "Dec 04 16:34:24 host ident[pid]: message" (short-precise adds .ffffff)
SHORT_LINE = re.compile(
    rb"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? (?:(\S+) )??([^\s\[]+?)(?:\[(\d+)\])?: ?(.*)$")
EXPORT_START = (b"__CURSOR=", b"__REALTIME_TIMESTAMP=")


def read_export_file(path: str | os.PathLike[str], *, redact: Callable[[str], str],
                     stats: ReadStats | None = None) -> Iterator[LogEntry]:
    """Entries (:class:`zcnb.logs.LogEntry`) of a saved ``journalctl -o export``, as
    :func:`zcnb.logs.journal.read_journal` reads journalctl's pipe: malformed and cut entries are skipped and
    counted in ``stats.unreadable``, times out of range in ``stats.bad_times``."""
    counts = stats if stats is not None else ReadStats()
    build = EntryBuilder(redact, stats=counts)
    with open(path, "rb") as fh:
        for records in export_records(fh.read, stats=counts):
            yield from build.entries(records)


def read_short_file(path: str | os.PathLike[str], *, unit: str | None, redact: Callable[[str], str],
                    stats: ReadStats | None = None) -> Iterator[LogEntry]:
    """Entries of a ``journalctl -o short`` text log (no times: the format has no year); other units' lines are
    skipped when ``unit`` is given; lines that are not journal lines (``-- Boot ... --``) too. Lines longer
    than ``MAX_LINE`` are cut (``stats.cut_lines``)."""
    ident = unit_identifier(unit)
    with open(path, "rb") as fh:
        for raw in bounded_lines(fh, MAX_LINE, stats=stats):
            m = SHORT_LINE.match(raw.rstrip(b"\r\n"))
            if not m:
                continue
            _host, ident_b, pid_b, msg = m.groups()
            idt = ident_b.decode("utf-8", "replace")
            if ident is not None and idt != ident:
                continue
            yield make_entry(msg.decode("utf-8", "replace"), pid=int(pid_b) if pid_b and len(pid_b) < 12 else None,
                             unit=ident_unit(idt), identifier=idt, redact=redact)
