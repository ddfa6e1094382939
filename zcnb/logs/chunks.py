"""Reading text logs for :mod:`zcnb.logs.scan`: chunks of complete lines, time-bucket slices, worker ranges.

A chunk whose lines all belong to one process of the unit is cut into time-bucket slices by bisection
(journal output is time-ordered) and each slice is counted by :func:`zcnb.logs.scan.scan_block`; a chunk with a
restart is split at the pid change; chunks with other units' lines or unordered times go line by line.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .message import MAX_LINE, skip_line
from .scan import ISO_LINE, Acc, LineSeq, Where, bucket_of, line_ts, parse_iso, scan_block, scan_messages

__all__ = ["BINARY_SHARE", "CHUNK", "ScanConfig", "binary_share", "iter_chunks", "scan_range", "sniff_format"]

_BANNER = b"Main Token:"


@dataclass(frozen=True)
class ScanConfig:
    """What to count in a text log: format, bucket width (s), syslog identifier of the unit."""

    fmt: str  # "short-iso" | "raw" | "json" (the chunk and native engines); "export" | "short" (per entry)
    width: int
    ident: bytes | None
    unit: bytes | None = None  # json: the full unit name entries must have (with ``ident`` for entries without one)


def sniff_format(head: bytes) -> str:
    """``json`` / ``export`` (a saved ``journalctl -o json`` / ``-o export``; ``-o json-seq`` and ``-o json-sse``
    records count as ``json``), ``json-pretty``, ``short-iso`` / ``short`` when most of the first lines carry that
    journalctl prefix, else ``raw``."""
    from .formats import EXPORT_START, SHORT_LINE

    if head.startswith(EXPORT_START):
        return "export"
    parts = head.split(b"\n")
    if len(parts) > 1:
        parts = parts[:-1]  # the last one may be cut; a single giant first line is judged by its head
    lines = [ln for ln in parts[:200] if ln.strip() and not ln.startswith(b"-- ")]
    if not lines:
        return "raw"
    journal = sum(1 for ln in lines if _JSON_RECORD.match(ln) and any(k in ln for k in _JOURNAL_KEYS))
    if journal * 2 >= len(lines):
        return "json"
    if lines[0].strip() == b"{" and any(ln.lstrip().startswith(k + b" : ") for ln in lines[1:60] for k in _JOURNAL_KEYS):
        return "json-pretty"
    hits = sum(1 for ln in lines if ISO_LINE.match(ln))
    if hits * 2 >= len(lines):
        return "short-iso"
    short = sum(1 for ln in lines if SHORT_LINE.match(ln))
    return "short" if short * 2 >= len(lines) else "raw"


_JOURNAL_KEYS = (b'"__REALTIME_TIMESTAMP"', b'"__CURSOR"', b'"MESSAGE"')
_JSON_RECORD = re.compile(rb"(?:\x1e|data: )?\s*\{")  # -o json, json-seq (RS first), json-sse ("data: " first)
_SYSLOG_TAIL = rb"(?: \S+)?? [^\s\[]+?(?:\[\d+\])?:"  # [host] ident[pid]:
# journalctl text outputs that are read as raw lines (their prefix is none of ISO_LINE / SHORT_LINE)
OTHER_JOURNAL_FORMATS = {
    "short-full": re.compile(rb"[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+" + _SYSLOG_TAIL),
    "short-unix": re.compile(rb"\d{1,12}\.\d{6}" + _SYSLOG_TAIL),
    "short-monotonic": re.compile(rb"\[ *\d+\.\d{6}\]" + _SYSLOG_TAIL),
    "short-delta": re.compile(rb"\[ *\d+\.\d{6} <[ \d.]+>\]" + _SYSLOG_TAIL),
    # an entry: a header line (its time and cursor), then a "    FIELD=value" line per field
    "verbose": re.compile(rb"[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} \S+ \[s=[0-9a-f]+;i=|    [A-Z_][A-Z0-9_]*="),
}


def other_journal_format(head: bytes) -> str | None:
    """The journalctl output format (``short-full``, ``short-unix``, ...) most of ``head``'s lines are in, when it
    is one zcnb reads only as raw lines; None otherwise."""
    lines = [ln for ln in head.split(b"\n")[:200] if ln.strip() and not ln.startswith(b"-- ")]
    for name, pattern in OTHER_JOURNAL_FORMATS.items():
        if lines and sum(1 for ln in lines if pattern.match(ln)) * 2 >= len(lines):
            return name
    return None
BINARY_SHARE = 0.1  # a head with more binary bytes than this share is binary data, not a log
_CONTROL = bytes(c for c in range(32) if c not in b"\t\n\r\x0b\x0c\x1b") + b"\x7f"  # ESC: colour codes


def binary_share(head: bytes) -> float:
    """The share of ``head`` that is binary: NUL and other control bytes (tab, newlines, form feed and ESC are
    text), and bytes of invalid UTF-8. A text log, even with a few broken bytes, stays far below ``BINARY_SHARE``."""
    if not head:
        return 0.0
    control = len(head) - len(head.translate(None, _CONTROL))
    text = head.decode("utf-8", "replace")
    invalid = text.count("\ufffd") - head.count("\ufffd".encode())
    return (control + invalid) / len(head)


def scan_lines_slow(acc: Acc, buf: bytes, cfg: ScanConfig) -> None:
    """Per-line path for short-iso text that is mixed, unordered or has non-journal lines."""
    cur: int | None = None
    msgs: list[bytes] = []
    tss: list[float | None] = []
    seqs: list[int] = []
    pids: list[int | None] = []
    for m in ISO_LINE.finditer(buf):
        ts_b, _host, ident, pid_b, msg = m.groups()
        if cfg.ident is not None and ident != cfg.ident:
            continue
        ts = parse_iso(ts_b)
        if ts is None:  # not a date, or out of range: the line counts without a time
            acc.bad_times += 1
        pid = int(pid_b) if pid_b and len(pid_b) < 12 else None
        seq = acc.lines
        acc.lines += 1
        acc.see_time(ts)
        acc.see_pid(ts, pid, seq)
        if pid is None and _BANNER in msg:
            acc.see_banner(ts, seq)
        bb = bucket_of(ts, cfg.width) if ts is not None else None
        if bb != cur:
            scan_messages(acc, msgs, tss, seqs, pids, bucket=cur)
            msgs, tss, seqs, pids, cur = [], [], [], [], bb
        msgs.append(msg)
        tss.append(ts)
        seqs.append(seq)
        pids.append(pid)
    scan_messages(acc, msgs, tss, seqs, pids, bucket=cur)


def _line_start(buf: bytes, x: int) -> int:
    """First line start at or after ``x``."""
    if x <= 0:
        return 0
    if buf[x - 1:x] == b"\n":
        return x
    nl = buf.find(b"\n", x)
    return len(buf) if nl < 0 else nl + 1


_STAMP = re.compile(rb"(?m)^(\S+) ")


def _stamps_ordered(buf: bytes) -> bool:
    """Every line's timestamp >= the previous one's (the bucket search below assumes it).

    Compared as bytes, which is chronological only for one width and one UTC offset: anything else
    counts as unordered and takes the per-line path.
    """
    stamps = _STAMP.findall(buf)
    if not stamps:
        return False
    width, offset = len(stamps[0]), stamps[0][-5:]
    if any(len(x) != width or x[-5:] != offset for x in stamps):
        return False
    return all(a <= b for a, b in itertools.pairwise(stamps))


class _Unordered(Exception):
    """A chunk is not time-ordered (or has an unparsable line): use the per-line path."""


def _ts(buf: bytes, start: int) -> float:
    sp = buf.find(b" ", start, start + 40)
    t = parse_iso(buf[start:sp]) if sp > start else None
    if t is None:
        raise _Unordered
    return t


def _first_at_or_after(buf: bytes, lo: int, hi: int, target: float) -> int:
    """Smallest line start in (lo, hi] whose timestamp is >= target (hi if none); lines sorted by time."""
    a, z = lo, hi
    while z - a > 1:
        mid = (a + z) // 2
        s = _line_start(buf, mid)
        if s >= hi or _ts(buf, s) >= target:
            z = mid
        else:
            a = mid
    return _line_start(buf, z)


def _pid_runs(buf: bytes, ident: bytes, n_lines: int) -> list[int] | None:
    """Line offsets where the pid changes, when every line is ``ident``'s and pids come in a few runs."""
    if buf.count(b" " + ident + b"[") != n_lines:
        return None
    pids = re.findall(b" " + re.escape(ident) + rb"\[(\d+)\]: ", buf)  # one per line, in C
    runs = [k for k, _ in itertools.groupby(pids)]
    if len(runs) < 2 or len(runs) > 64:  # interleaved processes: the per-line path handles them
        return None
    starts = [0]
    for pid in runs[1:]:  # the first line of each run: the first hit of its needle after the previous run
        pos = buf.find(b" " + ident + b"[" + pid + b"]: ", starts[-1])
        if pos < 0:
            return None
        starts.append(buf.rfind(b"\n", 0, pos) + 1)
    return starts


def scan_iso_chunk(acc: Acc, buf: bytes, cfg: ScanConfig) -> None:
    """Fast path for a chunk of complete short-iso lines; falls back to :func:`scan_lines_slow`."""
    m0 = ISO_LINE.match(buf)
    last_start = buf.rfind(b"\n", 0, len(buf) - 1) + 1
    m1 = ISO_LINE.match(buf, last_start)
    if not m0 or not m1 or (cfg.ident is not None and m0.group(3) != cfg.ident):
        return scan_lines_slow(acc, buf, cfg)
    ident, pid_b = m0.group(3), m0.group(4)
    needle = b" " + ident + (b"[" + pid_b + b"]: " if pid_b else b": ")
    n_lines = buf.count(b"\n")
    if buf.count(needle) != n_lines:  # another pid (a restart) or other units inside
        runs = _pid_runs(buf, ident, n_lines) if pid_b else None
        if runs is None:
            return scan_lines_slow(acc, buf, cfg)
        for a, z in zip(runs, runs[1:] + [len(buf)]):
            scan_iso_chunk(acc, buf[a:z], cfg)
        return None
    try:
        t0, t1 = _ts(buf, 0), _ts(buf, last_start)
        if t1 < t0 or not _stamps_ordered(buf):
            raise _Unordered
        slices: list[tuple[int, int, int]] = []
        p = 0
        while p < len(buf):
            bb = bucket_of(_ts(buf, p), cfg.width)
            q = _first_at_or_after(buf, p, len(buf), bb + cfg.width)
            last = buf.rfind(b"\n", p, q - 1) + 1
            if q <= p or _ts(buf, p) < bb or bucket_of(_ts(buf, last), cfg.width) != bb:
                raise _Unordered
            slices.append((p, q, bb))
            p = q
    except _Unordered:
        return scan_lines_slow(acc, buf, cfg)
    pid = int(pid_b) if pid_b and len(pid_b) < 12 else None
    base = acc.lines
    acc.lines += n_lines
    acc.see_time(t0)
    acc.see_time(t1)
    acc.see_pid(t0, pid, base)
    if pid is None:
        seq = LineSeq(buf, base)
        for bm in re.finditer(rb"(?m)^[^\n]*?" + re.escape(_BANNER), buf):  # one banner per line at most
            acc.see_banner(line_ts(buf, bm.start()), seq(bm.start()))

    def ts_at(pos: int) -> float | None:
        return line_ts(buf, pos)

    where = Where(ts_at=ts_at, seq_at=LineSeq(buf, base), pid_at=lambda _p: pid)
    for p, q, bb in slices:  # levels only right after the prefix (never "]: error" inside a message)
        scan_block(acc, buf, p, q, sep=needle, bucket=bb, where=where)
    return None


def scan_raw_chunk(acc: Acc, buf: bytes, cfg: ScanConfig) -> None:
    """Lines with no timestamp and no pid: counts only, restarts from startup banners (every one counts)."""
    blob = b"\n" + buf
    base = acc.lines
    acc.lines += buf.count(b"\n")
    seq = LineSeq(blob, base - 1)  # a banner's position lies after its line's newline
    pos = blob.find(_BANNER)
    while pos >= 0:
        acc.see_banner(None, seq(pos))
        pos = blob.find(_BANNER, pos + len(_BANNER))
    where = Where(ts_at=lambda _p: None, seq_at=LineSeq(blob, base), pid_at=lambda _p: None)
    scan_block(acc, blob, 0, len(blob), sep=b"\n", bucket=None, where=where)


CHUNK = 8 << 20  # per worker: a few copies of this are alive at once


def iter_chunks(path: str, start: int, end: int, *, cut: list[int] | None = None) -> Iterator[bytes]:
    """Yield buffers of complete lines whose first byte lies in [start, end).

    A line longer than ``MAX_LINE`` bytes (before its newline) is cut, wherever the reads fall: its first
    ``MAX_LINE`` bytes are yielded as the line, the rest is skipped unread into memory, and ``cut[0]`` counts it
    (:func:`zcnb.logs.message.bounded_lines`' rule, and the C scanner's)."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":  # the line started in the previous range: skip its rest
                skip_line(f, MAX_LINE)
        pos = f.tell()  # the file offset of carry's first byte
        carry = b""
        while pos < end:
            data = f.read(CHUNK)
            if not data:
                if carry:
                    yield _cut_long(carry + b"\n", cut)
                return
            buf = carry + data
            rel_end = end - pos
            if rel_end <= len(buf):
                nl = buf.find(b"\n", max(rel_end - 1, 0))
                if nl >= 0:
                    yield _cut_long(buf[: nl + 1], cut)
                    return
            nl = buf.rfind(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE:  # a giant line: its head, then the rest skipped
                    if cut is not None:
                        cut[0] += 1
                    yield buf[:MAX_LINE] + b"\n"
                    skip_line(f, MAX_LINE)
                    pos, carry = f.tell(), b""
                else:
                    carry = buf
                continue
            yield _cut_long(buf[: nl + 1], cut)
            pos += nl + 1
            carry = buf[nl + 1:]


def _cut_long(buf: bytes, cut: list[int] | None) -> bytes:
    """``buf`` (complete lines) with each line longer than ``MAX_LINE`` bytes cut to its first ``MAX_LINE`` bytes.

    Such a line holds a whole newline-free piece of ``MAX_LINE // 2`` bytes of any tiling of it, so a few
    ``find`` calls per buffer tell (each stops at the first newline of its piece)."""
    if len(buf) <= MAX_LINE + 1:
        return buf
    half = MAX_LINE // 2
    parts: list[bytes] = []
    done = x = 0
    while x < len(buf):
        if buf.find(b"\n", x, x + half) >= 0:
            x += half
            continue
        first = buf.rfind(b"\n", done, x) + 1 or done
        last = buf.find(b"\n", x)
        if last - first > MAX_LINE:
            parts += (buf[done:first + MAX_LINE], b"\n")
            done = last + 1
            if cut is not None:
                cut[0] += 1
        x = last + 1
    return b"".join([*parts, buf[done:]]) if parts else buf


def scan_range(path: str, start: int, end: int, cfg: ScanConfig) -> Acc:
    """Scan one byte range of a text log (run in a worker process for big files)."""
    acc = Acc()
    cut = [0]
    for buf in iter_chunks(path, start, end, cut=cut):
        if cfg.fmt == "short-iso":
            scan_iso_chunk(acc, buf, cfg)
        else:
            scan_raw_chunk(acc, buf, cfg)
    acc.cut_lines += cut[0]
    return acc
