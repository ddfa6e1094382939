"""Fast parsing of ``journalctl -o export`` output into :class:`~zcnb.logs.LogEntry` objects.

:func:`zcnb.logs.journal.read_journal` asks journalctl for the export format instead of JSON: journalctl
writes it ~2.5x faster (no JSON escaping), and it is cheaper to parse here too. A block of export
text holds entries separated by an empty line and fields as ``NAME=value`` lines; values that are
not printable UTF-8 or hold a newline come in the binary form ``NAME\\n<le64 size><bytes>\\n``.
Blocks without a binary field (nearly all of them) are split with two ``bytes.split`` calls; an entry
with a binary field is walked field by field. The result is the same as decoding ``-o json --all``
(see ``entry_from_json``): a repeated field keeps its first value, bytes are decoded as UTF-8 with
replacement, numbers that do not parse become ``None``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from operator import methodcaller

from ..redact import Redactor
from .message import MAX_LOG_TS, LogEntry, ReadStats, plain_level

__all__ = ["EXPORT_BLOCK", "EntryBuilder", "export_records", "parse_int", "split_line", "usec_datetime"]

EXPORT_BLOCK = 1 << 20  # bytes per os.read from the journalctl pipe
MAX_ENTRY = 64 << 20  # an entry (or a binary field's stated size) larger than this is unreadable: bounded memory
_MAX_USEC = MAX_LOG_TS * 1_000_000
# zcnb.logs.parse_message's two regexes (level prefix, then bracket tag) as one match; tested equal.
_LINE = re.compile(r"(?:(error|warning|info|debug)(?:\(([^)]*)\))?: ?)?(?:\[([\w.-]+)\])?")
_SPLIT_EQ = methodcaller("split", b"=", 1)
_U64 = struct.Struct("<Q")
_CACHE_MAX = 1 << 15  # distinct messages remembered (the gateway repeats many lines verbatim)
_UTC = UTC


def parse_int(value: bytes | None) -> int | None:
    """An integer field (``_PID``, ``PRIORITY``); ``None`` when missing or not a number."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:  # non-ASCII digits: int() of bytes refuses them, int() of str (the JSON path) accepts them
        return int(value.decode("utf-8", "replace"))
    except ValueError:
        return None


def usec_datetime(usec: int | None) -> datetime | None:
    """UTC datetime of a journal microsecond timestamp (``None`` when missing or out of range: before 1970 or from
    2200 on, :data:`zcnb.logs.message.MAX_LOG_TS`)."""
    if usec is None or not 0 <= usec < _MAX_USEC:
        return None
    try:
        return datetime.fromtimestamp(usec / 1e6, _UTC)
    except (OverflowError, ValueError, OSError):  # beyond year 9999
        return None


def split_line(message: str) -> tuple[str, str | None, str | None]:
    """``(level, scope, tag)`` of a Zig log line, as :func:`zcnb.logs.parse_message` gives them."""
    m = _LINE.match(message)
    assert m is not None  # every part is optional: it always matches
    level, scope, tag = m.groups()
    return level or plain_level(message), scope or None, tag


def _first_wins(lines: list[bytes]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for line in lines:
        k, _, v = line.partition(b"=")
        out.setdefault(k, v)
    return out


def _text_entry(entry: bytes) -> dict[bytes, bytes] | None:
    """The fields of an entry with no binary field; None when a line is not ``NAME=value`` (no NUL around, so
    it cannot be a binary field's name either: the entry is unreadable). Extra empty lines are ignored."""
    lines = entry.split(b"\n")
    if b"" in lines:
        lines = [ln for ln in lines if ln]
    try:
        d = dict(map(_SPLIT_EQ, lines))
    except ValueError:
        return None
    return d if len(d) == len(lines) else _first_wins(lines)


_MALFORMED: dict[bytes, bytes] = {}  # marker: an entry that is not in the export format (skipped, counted)


def _binary_entry(buf: bytes, pos: int, *, final: bool) -> tuple[dict[bytes, bytes], int] | None:
    """Parse one entry at ``pos`` field by field; ``None`` when ``buf`` ends before the entry does.

    A line that is neither ``NAME=value`` nor a binary field (its 8-byte size must have a zero top byte, stay
    under ``MAX_ENTRY`` and be followed by its payload and a newline) makes the entry ``_MALFORMED``: the
    position returned is then after the next empty line.
    """
    fields: dict[bytes, bytes] = {}
    n = len(buf)
    first = pos
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return None
        if nl == pos:  # empty line: end of entry
            return fields, pos + 1
        eq = buf.find(b"=", pos, nl)
        if eq >= 0:
            fields.setdefault(buf[pos:eq], buf[eq + 1:nl])
            pos = nl + 1
            continue
        if nl + 9 > n:
            return None
        start = nl + 9
        size = _U64.unpack_from(buf, nl + 1)[0]
        stop = start + size
        if buf[nl + 8] != 0 or size > MAX_ENTRY or (stop < n and buf[stop] != 10):
            return _skip_entry(buf, first, final=final)
        if stop + 1 > n:
            return None
        fields.setdefault(buf[pos:nl], buf[start:stop])
        pos = stop + 1  # the payload is followed by a newline


def _skip_entry(buf: bytes, pos: int, *, final: bool) -> tuple[dict[bytes, bytes], int] | None:
    """A malformed entry at ``pos``: skip it up to the next empty line (None: that line has not arrived yet)."""
    cut = buf.find(b"\n\n", pos)
    if cut < 0:
        return (_MALFORMED, len(buf)) if final else None
    return _MALFORMED, cut + 2


def _parse_block(buf: bytes, out: list[dict[bytes, bytes]], stats: ReadStats, *, final: bool = False) -> int:
    """Append the complete entries at the start of ``buf`` to ``out``; return the bytes consumed.

    ``final``: no more data follows (the end of the stream). Malformed entries are skipped and counted in
    ``stats.unreadable``.
    """
    pos = 0
    n = len(buf)
    while pos < n:
        while pos < n and buf[pos] == 10:  # extra empty lines between entries
            pos += 1
        # Text values are printable, so a NUL byte means a binary field: its 8-byte size always holds one
        # (the top byte), at most 7 bytes after the field name's newline. Entries ending before that are text.
        # Without a NUL the block may still end inside a size whose NUL has not arrived: keep 7 bytes back.
        z = buf.find(b"\0", pos)
        cut = buf.rfind(b"\n\n", pos, max(pos, (n if final else n - 7) if z < 0 else z - 7))
        if cut >= pos:
            for entry in buf[pos:cut].split(b"\n\n"):
                d = _text_entry(entry)
                if d is None:
                    stats.unreadable += 1
                elif d:
                    out.append(d)
            pos = cut + 2
            if z < 0:
                return pos
        elif z < 0:
            return pos
        got = _binary_entry(buf, pos, final=final)  # the entry holding the binary field
        if got is None:
            return pos
        if got[0] is _MALFORMED:
            stats.unreadable += 1
        else:
            out.append(got[0])
        pos = got[1]
    return pos


def export_records(read: Callable[[int], bytes], *, block: int = EXPORT_BLOCK,
                   stats: ReadStats | None = None) -> Iterator[list[dict[bytes, bytes]]]:
    """Batches of entries (field name -> raw value) from an export stream read with ``read(block)``.

    Entries that are not in the export format, one that grows past ``MAX_ENTRY`` without ending, and a
    truncated entry at the end of the stream are dropped and counted in ``stats.unreadable`` (memory stays
    bounded: at most ``MAX_ENTRY`` plus a block is held).
    """
    counts = stats if stats is not None else ReadStats()
    carry = b""
    skipping = False  # dropping an oversized entry up to the next empty line
    while True:
        data = read(block)
        if not data:
            break
        buf = carry + data if carry else data
        if skipping:
            cut = buf.find(b"\n\n")
            if cut < 0:
                carry = buf[-1:]  # its newline may pair with the next block's first byte
                continue
            buf, skipping = buf[cut + 2:], False
        out: list[dict[bytes, bytes]] = []
        used = _parse_block(buf, out, counts)
        carry = buf[used:]
        if len(carry) > MAX_ENTRY:
            counts.unreadable += 1
            cut = carry.find(b"\n\n")
            carry, skipping = (carry[cut + 2:], False) if cut >= 0 else (carry[-1:], True)
        if out:
            yield out
    if carry and not skipping:
        out = []
        carry = carry[_parse_block(carry, out, counts, final=True):]
        if out:
            yield out
        if carry.strip(b"\n"):  # journalctl was cut off mid-entry: drop it, count it
            counts.unreadable += 1


class EntryBuilder:
    """Turns export records into :class:`LogEntry` objects, redacting each message once.

    With a :class:`Redactor` (a pure function of the text) the redacted message and its parsed level,
    scope and tag are cached per distinct raw message; any other callable is called for every entry.
    """

    def __init__(self, redact: Callable[[str], str], *, stats: ReadStats | None = None) -> None:
        self.redact = redact
        self.stats = stats if stats is not None else ReadStats()  # bad_times: entries whose time is out of range
        self._cache: dict[bytes, tuple[str, str, str | None, str | None]] | None = (
            {} if isinstance(redact, Redactor) else None)

    def message(self, raw: bytes | None) -> tuple[str, str, str | None, str | None]:
        """``(redacted message, level, scope, tag)`` of a raw ``MESSAGE`` value."""
        cache = self._cache
        if cache is not None and raw is not None:
            hit = cache.get(raw)
            if hit is not None:
                return hit
        msg = self.redact(raw.decode("utf-8", "replace") if raw else "")
        res = (msg, *split_line(msg))
        if cache is not None and raw is not None:
            if len(cache) >= _CACHE_MAX:
                cache.clear()  # bounded memory; a fresh cache refills with the current hot lines
            cache[raw] = res
        return res

    def entries(self, records: list[dict[bytes, bytes]]) -> list[LogEntry]:
        """One :class:`LogEntry` per record, in order."""
        out: list[LogEntry] = []
        append = out.append
        message = self.message
        cache = self._cache if self._cache is not None else {}
        fromts = datetime.fromtimestamp
        for d in records:
            get = d.get
            raw = get(b"MESSAGE")
            msg, level, scope, tag = cache.get(raw) or message(raw)  # type: ignore[arg-type]
            ts_raw = get(b"__REALTIME_TIMESTAMP")
            ts = usec = None
            if ts_raw is not None:
                usec = int(ts_raw) if ts_raw.isdigit() and len(ts_raw) < 18 else parse_int(ts_raw)
                if usec is not None and 0 <= usec < _MAX_USEC:  # the common case
                    ts = fromts(usec / 1e6, _UTC)
            unit_raw = get(b"_SYSTEMD_USER_UNIT") or get(b"_SYSTEMD_UNIT")  # same 'or' as the JSON path
            ident = get(b"SYSLOG_IDENTIFIER")
            if ts is None and usec is not None:  # out of range: read without a time, counted
                self.stats.bad_time(unit_raw.decode("utf-8", "replace") if unit_raw is not None else None,
                                    ident.decode("utf-8", "replace") if ident is not None else None)
            pid = get(b"_PID")
            prio = get(b"PRIORITY")
            append(LogEntry(
                ts,
                int(pid) if pid is not None and pid.isdigit() else parse_int(pid),
                unit_raw.decode("utf-8", "replace") if unit_raw is not None else None,
                level, scope, tag, msg,
                ident.decode("utf-8", "replace") if ident is not None else None,
                int(prio) if prio is not None and prio.isdigit() else parse_int(prio),
            ))
        return out
