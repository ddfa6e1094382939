"""The counting engine behind :func:`zcnb.logs.summarize_logs`.

Speed comes from never looping over lines in Python on the common path: a block of log
text is handed to a few compiled bytes regexes (``findall`` over the whole block, whose
literal prefixes let the regex engine skip quickly) and the hits are tallied with
``Counter`` (C). Plain-text logs are read in large chunks; time buckets are found by
bisection (journal output is time-ordered), and chunks that are mixed (other units, several
pids) or out of order fall back to a per-line path with the same counting rules.
Journal entries (already parsed) are grouped per bucket into blocks and counted the same way.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["Acc", "ISO_LINE", "bucket_of", "canonical_skill", "line_ts", "scan_block"]

# journalctl -o short-iso: "2026-11-28T10:00:00+00:00 host ident[pid]: message"
ISO_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?) (?:(\S+) )??([^\s\[]+?)(?:\[(\d+)\])?: ?(.*)$",
    re.M,
)
_SKILL_TOKEN = re.compile(rb"skill:([A-Za-z0-9_-]+)")
_SEP_RE: dict[bytes, re.Pattern[bytes]] = {}
_GATEWAY_REQ = re.compile(rb"^\[gateway\] ([A-Z]+) (/\S*)")
_NUM = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")
_NUMB = re.compile(rb"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")
_ALLOC_WORDS = (b"alloc", b"free", b"deinit")
_GPA_SCOPES = ("gpa", "DebugAllocator")


def _level_regex(sep: bytes) -> re.Pattern[bytes]:
    """Level lines, anchored on ``sep`` (``]: `` in short-iso text, newline in message blocks)."""
    rx = _SEP_RE.get(sep)
    if rx is None:
        rx = re.compile(re.escape(sep) + rb"(error|warning|debug)(?:\(([^)\n]*)\))?: ([^\n]*)")
        _SEP_RE[sep] = rx
    return rx


# One pass keyed on the bracket tag: tool calls (skill name from the args JSON) and request kinds.
_TAG_RE = re.compile(
    rb"\[(?:agent\] tool (?:skill args=[^\n]*?\"name\":\s*\"([^\"\n]*)\"|([\w.-]+) args=)|(heartbeat|ws)\] )"
)


def canonical_skill(name: str) -> str:
    """One display form for skill names: lower case, hyphenated (``git_workflow`` -> ``git-workflow``)."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def normalise_message(msg: str) -> str:
    """Group key for error messages: numbers and 0x addresses replaced by ``N`` / ``0x_``."""
    return _NUM.sub(lambda m: "0x_" if m.group(0).startswith("0x") else "N", msg)[:300]


@functools.lru_cache(maxsize=8192)  # many lines share a second: parse each timestamp once
def parse_iso(ts: bytes | str) -> float | None:
    """Epoch seconds of a short-iso timestamp (None when unparsable)."""
    try:
        s = ts.decode("ascii") if isinstance(ts, bytes) else ts
        dt = datetime.fromisoformat(s.replace(",", "."))
    except (ValueError, UnicodeDecodeError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)  # journalctl -o short-iso always has an offset; bare = UTC
    return dt.timestamp()


def line_ts(buf: bytes, pos: int) -> float | None:
    """Timestamp of the short-iso line containing byte ``pos`` of ``buf``."""
    start = buf.rfind(b"\n", 0, pos) + 1
    sp = buf.find(b" ", start, start + 40)
    return parse_iso(buf[start:sp]) if sp > start else None


def bucket_of(ts: float, width: int) -> int:
    return int(ts // width) * width


@dataclass
class Acc:
    """Mutable tallies of one pass; merged across chunks/processes (plain picklable containers)."""

    lines: int = 0
    skills_token: Counter[str] = field(default_factory=Counter)
    skills_tool: Counter[str] = field(default_factory=Counter)
    tools: Counter[str] = field(default_factory=Counter)
    levels: Counter[str] = field(default_factory=Counter)
    priorities: Counter[int] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    alloc_mentions: Counter[str] = field(default_factory=Counter)
    allocator: Counter[str] = field(default_factory=Counter)
    buckets: Counter[tuple[int, str]] = field(default_factory=Counter)
    bucket_skill_forms: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    errors: dict[str, list[Any]] = field(default_factory=dict)  # key -> [count, first, last, level, example]
    pids: list[tuple[float | None, int]] = field(default_factory=list)  # (ts, pid) at each change
    banners: list[float | None] = field(default_factory=list)
    first_ts: float | None = None
    last_ts: float | None = None

    def see_time(self, ts: float | None) -> None:
        if ts is None:
            return
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def see_pid(self, ts: float | None, pid: int | None) -> None:
        if pid is not None and (not self.pids or self.pids[-1][1] != pid):
            self.pids.append((ts, pid))

    def merge(self, other: Acc) -> None:
        """Add ``other`` (a later part of the same log) into self."""
        self.lines += other.lines
        for name in ("skills_token", "skills_tool", "tools", "levels", "priorities", "requests", "alloc_mentions",
                     "allocator", "buckets", "bucket_skill_forms"):
            getattr(self, name).update(getattr(other, name))
        for key, (n, first, last, level, example) in other.errors.items():
            mine = self.errors.get(key)
            if mine is None:
                self.errors[key] = [n, first, last, level, example]
            else:
                mine[0] += n
                mine[1] = _min(mine[1], first)
                mine[2] = _max(mine[2], last)
        for ts, pid in other.pids:
            self.see_pid(ts, pid)
        self.banners.extend(other.banners)
        self.see_time(other.first_ts)
        self.see_time(other.last_ts)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def scan_block(acc: Acc, buf: bytes, start: int, end: int, *, sep: bytes, bucket: int | None,
               ts_at: Callable[[int], float | None], redact: Callable[[str], str]) -> None:
    """Count everything in ``buf[start:end]`` (lines of one unit, one time bucket).

    ``sep`` precedes every message (``b"]: "`` in short-iso text, ``b"\\n"`` in message blocks).
    ``ts_at(pos)`` gives the timestamp of the line holding ``pos`` (for first/last seen).
    """
    b = bucket
    for raw, n in Counter(_SKILL_TOKEN.findall(buf, start, end)).items():
        name = canonical_skill(raw.decode("ascii"))
        acc.skills_token[name] += n
        if b is not None:
            acc.bucket_skill_forms[(b, name, "token")] += n
    for (skill, tool, kind), n in Counter(_TAG_RE.findall(buf, start, end)).items():
        if skill:
            name = canonical_skill(skill.decode("utf-8", "replace"))
            acc.skills_tool[name] += n
            acc.tools["skill"] += n
            if b is not None:
                acc.bucket_skill_forms[(b, name, "tool")] += n
        elif tool:
            t = tool.decode("utf-8", "replace")
            acc.tools[t] += n
            if b is not None:
                acc.buckets[(b, f"tool:{t}")] += n
        elif kind:
            k = kind.decode("ascii")
            acc.requests[k] += n
            if b is not None:
                acc.buckets[(b, f"request:{k}")] += n
    seen: dict[tuple[bytes, bytes, bytes], list[Any]] = {}
    debug: Counter[bytes] = Counter()
    numb = _NUMB.sub
    for m in _level_regex(sep).finditer(buf, start, end):
        level = m.group(1)
        if level == b"debug":
            debug[m.group(3)] += 1
            continue
        msg = m.group(3)
        key = (level, m.group(2) or b"", numb(b"N", msg))
        hit = seen.get(key)
        if hit is None:
            seen[key] = [1, m.start(), m.start(), msg]
        else:
            hit[0] += 1
            hit[2] = m.start()
    if debug:
        _debug_hits(acc, debug, b)
    for (level, scope, _norm), (n, first, last, example) in seen.items():
        _level_hit(acc, level.decode("ascii"), scope.decode("utf-8", "replace"), example, n, b,
                   ts_at(first), ts_at(last), redact)


def _alloc_words(acc: Acc, low: bytes, n: int) -> None:
    for word in _ALLOC_WORDS:
        if word in low:
            acc.alloc_mentions[word.decode()] += n


def _debug_hits(acc: Acc, debug: Counter[bytes], b: int | None) -> None:
    acc.levels["debug"] += sum(debug.values())
    for raw, n in debug.items():
        _alloc_words(acc, raw.lower(), n)
        m = _GATEWAY_REQ.match(raw)
        if m:
            kind = f"{m.group(1).decode()} {m.group(2).decode('utf-8', 'replace')}"
            acc.requests[kind] += n
            if b is not None:
                acc.buckets[(b, f"request:{kind}")] += n


def _level_hit(acc: Acc, level: str, scope: str, raw: bytes, n: int, b: int | None,
               first: float | None, last: float | None, redact: Callable[[str], str]) -> None:
    """Count ``n`` error/warning lines that share a message shape; ``raw`` is one of them."""
    acc.levels[level] += n
    low = raw.lower()
    _alloc_words(acc, low, n)
    if b is not None:
        acc.buckets[(b, level)] += n
    if scope in _GPA_SCOPES:
        acc.allocator[f"error({scope})"] += n
    if b"leaked" in low and b"memory address" in low:
        acc.allocator["leak reports"] += n
    if b"double free" in low:
        acc.allocator["double free"] += n
    if level == "warning" and b"unauthori" in low:
        acc.requests["unauth"] += n
        if b is not None:
            acc.buckets[(b, "unauth")] += n
    clean = redact(raw.decode("utf-8", "replace"))
    key = f"{level}\x00{scope}\x00{normalise_message(clean)}"
    mine = acc.errors.get(key)
    if mine is None:
        acc.errors[key] = [n, first, last, level, (f"{level}({scope}): " if scope else f"{level}: ") + clean[:500]]
    else:
        mine[0] += n
        mine[1] = _min(mine[1], first)
        mine[2] = _max(mine[2], last)


# --- message blocks (journal entries, mixed or unordered text) ---------------------------------------
_BANNER = b"Main Token:"


def scan_messages(acc: Acc, msgs: list[bytes], tss: list[float | None], *, bucket: int | None,
                  redact: Callable[[str], str]) -> None:
    """Count a list of messages (one bucket) with the same rules as a text block."""
    if not msgs:
        return
    offsets: list[int] = []
    pos = 0
    for m in msgs:
        offsets.append(pos)
        pos += len(m) + 1
    blob = b"\n" + b"\n".join(msgs) + b"\n"

    def ts_at(p: int) -> float | None:
        import bisect

        i = bisect.bisect_right(offsets, p) - 1  # the match starts at the newline before message i
        return tss[max(i, 0)]

    scan_block(acc, blob, 0, len(blob), sep=b"\n", bucket=bucket, ts_at=ts_at, redact=redact)


@dataclass(frozen=True)
class ScanConfig:
    """What to count in a text log: format, bucket width (s), syslog identifier of the unit."""

    fmt: str  # "short-iso" | "raw"
    width: int
    ident: bytes | None
    redact: Callable[[str], str]


def sniff_format(head: bytes) -> str:
    """``short-iso`` when most of the first lines carry a journalctl short-iso prefix, else ``raw``."""
    parts = head.split(b"\n")
    if len(parts) > 1:
        parts = parts[:-1]  # the last one may be cut; a single giant first line is judged by its head
    lines = [ln for ln in parts[:200] if ln.strip() and not ln.startswith(b"-- ")]
    if not lines:
        return "raw"
    hits = sum(1 for ln in lines if ISO_LINE.match(ln))
    return "short-iso" if hits * 2 >= len(lines) else "raw"


def scan_lines_slow(acc: Acc, buf: bytes, cfg: ScanConfig) -> None:
    """Per-line path for short-iso text that is mixed, unordered or has non-journal lines."""
    cur: int | None = None
    msgs: list[bytes] = []
    tss: list[float | None] = []
    for m in ISO_LINE.finditer(buf):
        ts_b, _host, ident, pid_b, msg = m.groups()
        if cfg.ident is not None and ident != cfg.ident:
            continue
        ts = parse_iso(ts_b)
        if ts is None:
            continue
        pid = int(pid_b) if pid_b and len(pid_b) < 12 else None
        acc.lines += 1
        acc.see_time(ts)
        acc.see_pid(ts, pid)
        if pid is None and _BANNER in msg:
            acc.banners.append(ts)
        bb = bucket_of(ts, cfg.width)
        if bb != cur:
            scan_messages(acc, msgs, tss, bucket=cur, redact=cfg.redact)
            msgs, tss, cur = [], [], bb
        msgs.append(msg)
        tss.append(ts)
    scan_messages(acc, msgs, tss, bucket=cur, redact=cfg.redact)


def _line_start(buf: bytes, x: int) -> int:
    """First line start at or after ``x``."""
    if x <= 0:
        return 0
    if buf[x - 1:x] == b"\n":
        return x
    nl = buf.find(b"\n", x)
    return len(buf) if nl < 0 else nl + 1


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
        if t1 < t0:
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
    acc.lines += n_lines
    acc.see_time(t0)
    acc.see_time(t1)
    acc.see_pid(t0, pid)
    if pid is None:
        for bm in re.finditer(re.escape(_BANNER), buf):
            acc.banners.append(line_ts(buf, bm.start()))

    def ts_at(pos: int) -> float | None:
        return line_ts(buf, pos)

    for p, q, bb in slices:
        scan_block(acc, buf, p, q, sep=b"]: " if pid_b else b": ", bucket=bb, ts_at=ts_at, redact=cfg.redact)


def scan_raw_chunk(acc: Acc, buf: bytes, cfg: ScanConfig) -> None:
    """Lines with no timestamp and no pid: counts only, restarts from startup banners."""
    blob = b"\n" + buf
    acc.lines += buf.count(b"\n")
    acc.banners.extend(None for _ in range(blob.count(_BANNER)))
    scan_block(acc, blob, 0, len(blob), sep=b"\n", bucket=None, ts_at=lambda p: None, redact=cfg.redact)


CHUNK = 16 << 20
MAX_LINE = 4 << 20  # a longer line is cut (bounded memory); the rest of it is skipped


def iter_chunks(path: str, start: int, end: int) -> Any:
    """Yield buffers of complete lines whose first byte lies in [start, end)."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":  # the line started in the previous range: skip its rest
                rest = f.readline(MAX_LINE)
                while rest and not rest.endswith(b"\n"):
                    rest = f.readline(MAX_LINE)
        pos = f.tell()
        carry = b""
        skipped = 0  # bytes dropped from a giant line held in carry
        while pos < end:
            data = f.read(CHUNK)
            if not data:
                if carry:
                    yield carry + b"\n"
                return
            buf = carry + data
            rel_end = end - pos - skipped
            if rel_end <= len(buf):
                nl = buf.find(b"\n", max(rel_end - 1, 0))
                if nl >= 0:
                    yield buf[: nl + 1]
                    return
            nl = buf.rfind(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE:  # a giant line: keep its head, drop the rest
                    skipped += len(buf) - MAX_LINE
                    carry = buf[:MAX_LINE]
                else:
                    carry = buf
                continue
            yield buf[: nl + 1]
            pos += nl + 1 + skipped
            skipped = 0
            carry = buf[nl + 1:]


def scan_range(path: str, start: int, end: int, cfg: ScanConfig) -> Acc:
    """Scan one byte range of a text log (run in a worker process for big files)."""
    acc = Acc()
    for buf in iter_chunks(path, start, end):
        if cfg.fmt == "short-iso":
            scan_iso_chunk(acc, buf, cfg)
        else:
            scan_raw_chunk(acc, buf, cfg)
    return acc
