"""One log message: :class:`LogEntry` (a line or journal entry) and how its level, scope and tag are read.

The gateway's lines carry a Zig level prefix (``error(scope): ...``) and often a bracket tag (``[agent]``); lines
without a Zig level may still have one (:func:`plain_level`: panics and ``Connection error: ...`` are errors,
``Warn: ...`` warnings). Every reader (text logs, saved journal exports, ``journalctl``) builds its entries here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from ..exceptions import ConfigError

__all__ = ["LEVELS", "MAX_LINE", "MAX_LOG_TS", "LogEntry", "ReadStats", "bounded_lines", "full_unit", "ident_unit",
           "make_entry", "parse_message", "plain_level", "skip_line", "unit_identifier"]

#: A log time from 2200-01-01T00:00:00Z on (or before 1970) is out of range: its line counts without a time (and
#: the summary says how many). The same bound in both engines (``MAX_LOG_SECS`` of ``zcnb/logs/_scan.c``).
MAX_LOG_TS = 7_258_118_400
MAX_LINE = 4 << 20  # a longer line is cut (text) or unreadable (JSON): memory stays bounded

LEVELS = ("error", "warning", "info", "debug", "none")
_ZIG = re.compile(r"^(error|warning|info|debug)(?:\(([^)]*)\))?: ?(.*)$", re.DOTALL)
# lines the gateway prints without a Zig level that still have one (logscan._plain_regex is the bytes twin)
_PLAIN = re.compile(r"(?:thread [0-9]+ )?panic: |(?:Segmentation fault|Illegal instruction|Bus error) at address "
                    r"|(Warn(?:ing)?): |(?:Error|[A-Z][a-z]+ error): ")
_TAG = re.compile(r"^\[([\w.-]+)\]\s*")


@dataclass(frozen=True)
class LogEntry:
    """One log line / journal entry; ``message`` is the whole (redacted) line after the syslog prefix."""

    timestamp: datetime | None
    pid: int | None
    unit: str | None
    level: str
    scope: str | None
    tag: str | None
    message: str
    identifier: str | None = None
    priority: int | None = None

    @property
    def text(self) -> str:
        """The message without the level prefix and bracket tag."""
        return parse_message(self.message)[3]

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "pid": self.pid, "unit": self.unit, "identifier": self.identifier, "priority": self.priority,
            "level": self.level, "scope": self.scope, "tag": self.tag, "message": self.message,
        }

    def _repr_markdown_(self) -> str:
        ts = self.timestamp.isoformat() if self.timestamp else "-"
        return f"`{ts}` pid {self.pid} **{self.level}** {self.message}"


@dataclass
class ReadStats:
    """What a reader met but could not use, counted as it reads; a summary of what it read reports it.

    ``unreadable``: JSON lines (not JSON, not an object, nested deeper than ``json`` reads, longer than
    ``MAX_LINE``) and export entries (malformed or cut) skipped; ``bad_times``: entries whose time is out of range
    (read without a time); ``cut_lines``: text lines longer than the reader keeps (only their head is read).
    """

    unreadable: int = 0
    bad_times: int = 0
    cut_lines: int = 0
    bad_time_units: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)  # (unit, identifier)

    def bad_time(self, unit: str | None, identifier: str | None) -> None:
        """Count an entry whose time is out of range (by unit, so a summary of one unit counts only its own)."""
        self.bad_times += 1
        self.bad_time_units[(unit, identifier)] += 1


def bounded_lines(fh: BinaryIO, limit: int, *, stats: ReadStats | None = None) -> Iterator[bytes]:
    """The lines of a binary file: a line longer than ``limit`` bytes (before its newline) yields its first ``limit``
    bytes (without a newline), the rest of it is skipped unread into memory, and ``stats.cut_lines`` counts it."""
    while True:
        line = fh.readline(limit)
        if not line:
            return
        if len(line) == limit and not line.endswith(b"\n"):
            rest = fh.readline(limit)
            if rest in (b"", b"\n"):  # exactly `limit` bytes long: nothing is cut
                yield line + rest
                continue
            if stats is not None:
                stats.cut_lines += 1
            if not rest.endswith(b"\n"):
                skip_line(fh, limit)
        yield line


def skip_line(fh: BinaryIO, limit: int) -> None:
    """Read past the next newline (or to the end), ``limit`` bytes at a time."""
    rest = fh.readline(limit)
    while rest and not rest.endswith(b"\n"):
        rest = fh.readline(limit)


def plain_level(message: str) -> str:
    """The level of a line without a Zig prefix: ``thread N panic: ...`` (a crash), ``Error: ...`` and
    ``Connection error: error.X`` -> ``error``; ``Warn: ...`` -> ``warning``; anything else ``none``."""
    m = _PLAIN.match(message)
    if m is None:
        return "none"
    return "warning" if m.group(1) else "error"


def parse_message(message: str) -> tuple[str, str | None, str | None, str]:
    """Split a Zig log line into ``(level, scope, tag, text)``.

    No Zig level prefix: the level of :func:`plain_level` (``none`` for most such lines: banner, stack traces),
    and the text is the whole line.
    """
    m = _ZIG.match(message)
    if m:
        level, scope, rest = m.group(1), m.group(2), m.group(3)
    else:
        level, scope, rest = plain_level(message), None, message
    t = _TAG.match(rest)
    return level, scope or None, (t.group(1) if t else None), (rest[t.end():] if t else rest)


def make_entry(message: str, *, timestamp: datetime | None = None, pid: int | None = None, unit: str | None = None,
               identifier: str | None = None, priority: int | None = None,
               redact: Callable[[str], str] | None = None) -> LogEntry:
    """Build a :class:`LogEntry`, redacting the message first."""
    msg = redact(message) if redact is not None else message
    level, scope, tag, _ = parse_message(msg)
    return LogEntry(timestamp, pid, unit, level, scope, tag, msg, identifier, priority)


def unit_identifier(unit: str | None) -> str | None:
    """The syslog identifier text logs show for ``unit`` (``zeptoclaw-gateway.service`` -> ``zeptoclaw-gateway``)."""
    if not unit:
        return None
    return unit.removesuffix(".service")


def ident_unit(ident: str) -> str | None:
    """The unit a text log's syslog identifier stands for (``zeptoclaw-gateway`` -> ``zeptoclaw-gateway.service``),
    or None when the identifier is no unit name (``(sd-pam)``, ``kernel: ...`` lines of a whole host's journal):
    such lines are read, and match a unit filter by identifier only."""
    try:
        return full_unit(ident)
    except ConfigError:
        return None


def full_unit(unit: str | None) -> str | None:
    """``zeptoclaw-gateway`` -> ``zeptoclaw-gateway.service`` (other suffixes kept); a name starting with ``-``
    or holding characters systemd does not allow is refused (:func:`zcnb.config.check_unit`)."""
    if not unit:
        return None
    from ..config import check_unit

    check_unit(unit)
    return unit if re.search(r"\.(service|scope|socket|timer|slice)$", unit) else unit + ".service"
