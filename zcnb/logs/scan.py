"""The counting engine behind :func:`zcnb.logs.summarize_logs`.

Speed comes from never looping over lines in Python on the common path: a block of log
text is handed to a few compiled bytes regexes (``findall`` over the whole block, whose
literal prefixes let the regex engine skip quickly) and the hits are tallied with
``Counter`` (C). Plain-text logs are read in large chunks; time buckets are found by
bisection (journal output is time-ordered), and chunks that are mixed (other units, several
pids) or out of order fall back to a per-line path with the same counting rules.
Journal entries (already parsed) are grouped per bucket into blocks and counted the same way.

Line levels: a Zig prefix (``error``/``warning``/``info``/``debug``, optional ``(scope)``), else the gateway's
plain lines: ``thread N panic: ...`` (and ``panic:``, ``Segmentation fault at address``, ...) are crashes (errors
and crash events), ``Error: ...`` / ``Connection error: ...`` are errors, ``Warn: ...`` warnings; any other line
has no level (``none``). Events (pid changes, startup banners, crashes) carry their line number (``seq``) so
restarts can be told apart from crashes whatever the chunking.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .message import MAX_LOG_TS
from .skills import SKILL_TOKEN_RE, TOOL_SKILL_ARGS

__all__ = ["EXAMPLE_MAX", "GROUP_KEY_MAX", "ISO_LINE", "MAX_GROUPS", "Acc", "ErrKey", "LineSeq", "Where", "add_level_group", "bucket_of", "line_ts", "scan_block",
           "scan_messages"]

# journalctl -o short-iso: "2026-11-28T10:00:00+00:00 host ident[pid]: message"
ISO_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?) (?:(\S+) )??([^\s\[]+?)(?:\[(\d+)\])?: ?(.*)$",
    re.MULTILINE,
)
_GATEWAY_REQ = re.compile(rb"^\[gateway\] ([A-Z]+) (/\S*)")
_NUM = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")
_NUMB = re.compile(rb"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")
_ALLOC_WORDS = (b"alloc", b"free", b"deinit")
_GPA_SCOPES = ("gpa", "DebugAllocator")
#: Bounded memory whatever the log (the same bounds in ``_scan.c``): at most MAX_GROUPS error/warning groups, the
#: first shapes seen in the log; lines of later new shapes are counted per level in ``Acc.other_errors``. A group's
#: key holds at most GROUP_KEY_MAX bytes of the normalised message, its example at most EXAMPLE_MAX bytes.
MAX_GROUPS = 5000
MAX_PIDS = 10_000  # processes listed (and checked for restarts) per log; later new pids are noted
MAX_CRASHES = 10_000  # crash lines listed per log (the first ones); later ones are counted
MAX_BANNERS = 10_000  # startup banners kept per log (the first ones); later ones are counted
GROUP_KEY_MAX = 1024
EXAMPLE_MAX = 4096


@functools.lru_cache(maxsize=64)
def _level_regex(sep: bytes) -> re.Pattern[bytes]:
    """Level lines, anchored on ``sep`` (the syslog prefix's end `` ident[pid]: `` in short-iso text, newline in
    message blocks): a level counts only at the start of the message, as in the per-line rules."""
    return re.compile(re.escape(sep) + rb"(error|warning|debug)(?:\(([^)\n]*)\))?: ([^\n]*)")


@functools.lru_cache(maxsize=64)
def _info_regex(sep: bytes) -> re.Pattern[bytes]:
    return re.compile(re.escape(sep) + rb"info(?:\([^)\n]*\))?: ")


_CRASH_PREFIXES = rb"(?:thread \d+ )?panic: |(?:Segmentation fault|Illegal instruction|Bus error) at address "


@functools.lru_cache(maxsize=64)
def _plain_regex(sep: bytes) -> re.Pattern[bytes]:
    """Lines without a Zig level that still have one: crashes, ``Warn:``, ``Error:`` / ``Connection error:``.

    Group 1 is the crash prefix (if a crash), group 2 the warning prefix, group 3 the whole line."""
    return re.compile(re.escape(sep) + rb"(?=(" + _CRASH_PREFIXES + rb")|(Warn(?:ing)?: )|(?:Error|[A-Z][a-z]+ error): )"
                      + rb"([^\n]*)")


# One pass keyed on the bracket tag: tool calls (skill name from the args JSON: the skill-name rule's tool
# form) and request kinds. Spaces after "name": never cross a line end (a message never continues into the next one).
_TAG_RE = re.compile(rb"\[(?:agent\] tool (?:" + TOOL_SKILL_ARGS + rb"|([\w.-]+) args=)|(heartbeat|ws)\] )")



@functools.lru_cache(maxsize=4096)  # a pure function of the text; shapes recur once per bucket
def normalise_message(msg: str) -> str:
    """Group key for error messages: numbers and 0x addresses replaced by ``N`` / ``0x_``."""
    return _NUM.sub(lambda m: "0x_" if m.group(0).startswith("0x") else "N", msg)[:300]


@functools.lru_cache(maxsize=8192)  # many lines share a second: parse each timestamp once
def parse_iso(ts: bytes | str) -> float | None:
    """Epoch seconds of a short-iso timestamp (None when it is not a date, or before 1970 or from 2200 on)."""
    try:
        s = ts.decode("ascii") if isinstance(ts, bytes) else ts
        dt = datetime.fromisoformat(s.replace(",", "."))
    except (ValueError, UnicodeDecodeError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # journalctl -o short-iso always has an offset; bare = UTC
    t = dt.timestamp()
    return t if 0 <= t < MAX_LOG_TS else None  # out of range: the line counts without a time


def line_ts(buf: bytes, pos: int) -> float | None:
    """Timestamp of the short-iso line containing byte ``pos`` of ``buf``."""
    start = buf.rfind(b"\n", 0, pos) + 1
    sp = buf.find(b" ", start, start + 40)
    return parse_iso(buf[start:sp]) if sp > start else None


def bucket_of(ts: float, width: int) -> int:
    return int(ts // width) * width


@dataclass
class Acc:
    """Mutable tallies of one pass; merged across chunks/processes (plain picklable containers).

    ``pids``, ``banners`` and ``crashes`` are events in file order with ``seq``, the line number (among the
    counted lines) at which they happen; ``pids`` holds each process's first line ``(ts, pid, seq, prev)`` (``prev``:
    the pid of the line before, None when there was none), at most ``MAX_PIDS`` of them (``pids_capped``: more came);
    ``pid_back`` the line at which a known pid's lines last resumed after another pid's (two processes side by
    side, not a restart); ``cur_pid`` the pid of the last line with one; ``bucket_arrays`` holds per-bucket counts from the native engine as
    ``(buckets, key indexes, counts, keys)`` (keys as in ``buckets``, skills as ``("skill", name, form)``).
    Skill, tool and request names are kept as the log wrote them: a name can be a secret, so it is redacted
    before it is made canonical (lower case), when a summary shows it (:func:`zcnb.logs.shown.shown_names`).
    """

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
    bucket_arrays: list[tuple[Any, Any, Any, list[Any]]] = field(default_factory=list)
    errors: dict[Any, list[Any]] = field(default_factory=dict)  # ErrKey -> [count, first, last, example, seq]
    other_errors: Counter[str] = field(default_factory=Counter)  # level -> lines of shapes beyond MAX_GROUPS
    pids: list[tuple[float | None, int, int, int | None]] = field(default_factory=list)  # (ts, pid, seq, prev)
    pid_back: dict[int, int] = field(default_factory=dict)  # pid -> seq where its lines last resumed
    pid_seen: set[int] = field(default_factory=set)  # the pids in ``pids``
    cur_pid: int | None = None
    pids_capped: bool = False
    banners: list[tuple[float | None, int]] = field(default_factory=list)  # (ts, seq), the first MAX_BANNERS
    banners_over: int = 0  # startup banners beyond them (counted, not kept)
    crashes: list[tuple[float | None, int | None, int, str]] = field(default_factory=list)  # (ts, pid, seq, line)
    crashes_over: int = 0  # crash lines beyond the first MAX_CRASHES (counted, not listed)
    first_ts: float | None = None
    last_ts: float | None = None
    unreadable: int = 0  # JSON lines / export entries skipped (zcnb.logs.message.ReadStats)
    bad_times: int = 0  # lines counted without a time: their time is not a date or out of range
    cut_lines: int = 0  # lines longer than MAX_LINE: only their head was read

    def see_time(self, ts: float | None) -> None:
        if ts is None:
            return
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def see_pid(self, ts: float | None, pid: int | None, seq: int) -> None:
        """A line (or the first of a run of lines) of ``pid``: a new process, or a known one's lines resuming."""
        if pid is None or pid == self.cur_pid:
            return
        self._pid_at(ts, pid, seq, self.cur_pid)
        self.cur_pid = pid

    def _pid_at(self, ts: float | None, pid: int, seq: int, prev: int | None) -> None:
        """``pid`` logs at line ``seq`` after a line of ``prev``: a known pid resumes, a new one is listed (while
        fewer than MAX_PIDS are)."""
        if pid in self.pid_seen:
            self.pid_back[pid] = max(self.pid_back.get(pid, -1), seq)
        elif len(self.pids) < MAX_PIDS:
            self.pids.append((ts, pid, seq, prev))
            self.pid_seen.add(pid)
        else:
            self.pids_capped = True

    def see_banner(self, ts: float | None, seq: int) -> None:
        """A startup banner at line ``seq``: kept while fewer than MAX_BANNERS are, else counted."""
        if len(self.banners) < MAX_BANNERS:
            self.banners.append((ts, seq))
        else:
            self.banners_over += 1

    def cap_errors(self) -> None:
        """Keep the MAX_GROUPS groups first seen in the log; count the lines of the others as ``other_errors``."""
        if len(self.errors) <= MAX_GROUPS:
            return
        order = sorted(self.errors, key=lambda k: self.errors[k][4])
        for key in order[MAX_GROUPS:]:
            self.other_errors[key[0].decode("ascii")] += self.errors.pop(key)[0]

    def merge(self, other: Acc) -> None:
        """Add ``other`` (a later part of the same log) into self."""
        base = self.lines
        self.lines += other.lines
        self.unreadable += other.unreadable
        self.bad_times += other.bad_times
        self.cut_lines += other.cut_lines
        for name in ("skills_token", "skills_tool", "tools", "levels", "priorities", "requests", "alloc_mentions",
                     "allocator", "buckets", "bucket_skill_forms"):
            getattr(self, name).update(getattr(other, name))
        self.bucket_arrays.extend(other.bucket_arrays)
        for key, (n, first, last, example, seq) in other.errors.items():
            mine = self.errors.get(key)
            if mine is None:
                self.errors[key] = [n, first, last, example, seq + base]
            else:
                mine[0] += n
                mine[1] = _min(mine[1], first)
                mine[2] = _max(mine[2], last)
                if seq + base < mine[4]:
                    mine[3], mine[4] = example, seq + base
        self.other_errors.update(other.other_errors)
        self.cap_errors()
        # other's pids as one pass over both parts sees them: new here, or a known one resuming (a pid going on
        # across the parts' edge "resumes" at the edge, which decides no restart otherwise: see summary._restarts)
        for ts, pid, seq, prev in other.pids:
            self._pid_at(ts, pid, seq + base, prev if prev is not None else self.cur_pid)
        for pid, seq in other.pid_back.items():
            if pid in self.pid_seen:
                self.pid_back[pid] = max(self.pid_back.get(pid, -1), seq + base)
        self.pids_capped = self.pids_capped or other.pids_capped
        if other.cur_pid is not None:
            self.cur_pid = other.cur_pid
        for ts, seq in other.banners:
            self.see_banner(ts, seq + base)
        self.banners_over += other.banners_over
        room = max(MAX_CRASHES - len(self.crashes), 0)
        self.crashes.extend((ts, pid, seq + base, msg) for ts, pid, seq, msg in other.crashes[:room])
        self.crashes_over += other.crashes_over + max(len(other.crashes) - room, 0)
        self.see_time(other.first_ts)
        self.see_time(other.last_ts)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class LineSeq:
    """Line numbers of positions in a buffer of newline-separated lines (first line = ``base``), asked in
    increasing order (counts newlines incrementally; restarts when asked backwards)."""

    def __init__(self, buf: bytes, base: int, start: int = 0) -> None:
        self.buf, self.base, self.start = buf, base, start
        self.pos, self.n = start, 0

    def __call__(self, pos: int) -> int:
        if pos < self.pos:
            self.pos, self.n = self.start, 0
        self.n += self.buf.count(b"\n", self.pos, pos)
        self.pos = pos
        return self.base + self.n


@dataclass(frozen=True)
class Where:
    """How :func:`scan_block` learns about the line holding a position: its time, line number and pid."""

    ts_at: Callable[[int], float | None]
    seq_at: Callable[[int], int]
    pid_at: Callable[[int], int | None]


def scan_block(acc: Acc, buf: bytes, start: int, end: int, *, sep: bytes, bucket: int | None, where: Where) -> None:
    """Count everything in ``buf[start:end]`` (lines of one unit, one time bucket).

    ``sep`` precedes every message (``b"]: "`` in short-iso text, ``b"\\n"`` in message blocks).
    """
    b = bucket
    for raw, n in Counter(SKILL_TOKEN_RE.findall(buf, start, end)).items():
        name = raw.decode("ascii")  # raw: redacted, then made canonical, when shown (summary.py)
        acc.skills_token[name] += n
        if b is not None:
            acc.bucket_skill_forms[(b, name, "token")] += n
    for (skill, tool, kind), n in Counter(_TAG_RE.findall(buf, start, end)).items():
        if skill:
            name = skill.decode("utf-8", "replace")
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
    info = len(_info_regex(sep).findall(buf, start, end))
    if info:
        acc.levels["info"] += info
    seen: dict[ErrKey, list[Any]] = {}
    debug: Counter[bytes] = Counter()
    for m in _level_regex(sep).finditer(buf, start, end):
        if m.group(1) == b"debug":
            debug[m.group(3)] += 1
        else:
            _seen(seen, m.group(1), m.group(2) or b"", m.group(3), "z", m.start(), where)
    for m in _plain_regex(sep).finditer(buf, start, end):
        line = m.group(3)
        kind = "c" if m.group(1) else "p"
        _seen(seen, b"warning" if m.group(2) else b"error", b"", line, kind, m.start(), where)
        if kind == "c" and len(acc.crashes) >= MAX_CRASHES:
            acc.crashes_over += 1
        elif kind == "c":
            acc.crashes.append((where.ts_at(m.start()), where.pid_at(m.start()), where.seq_at(m.start()),
                                line.decode("utf-8", "replace")))
    if debug:
        _debug_hits(acc, debug, b)
    for key, (n, first, last, example, seq) in sorted(seen.items(), key=lambda kv: kv[1][4]):  # in line order
        add_level_group(acc, key, n, b, first, last, example, seq)


# An error group: (level, scope, message with numbers as N, flags, kind), all from the raw line, so every engine
# and every chunking forms the same groups; redaction and the grouping of what is shown come at the end
# (logsummary), from each group's first line.
ErrKey = tuple[bytes, bytes, bytes, int, str]


def _seen(seen: dict[ErrKey, list[Any]], level: bytes, scope: bytes, msg: bytes, kind: str, pos: int,
          where: Where) -> None:
    key = (level, scope, _NUMB.sub(b"N", msg)[:GROUP_KEY_MAX], _flags(msg), kind)
    ts = where.ts_at(pos)
    hit = seen.get(key)
    if hit is None:
        seen[key] = [1, ts, ts, msg[:EXAMPLE_MAX], where.seq_at(pos)]
    else:
        hit[0] += 1
        hit[1] = _min(hit[1], ts)
        hit[2] = _max(hit[2], ts)


_FLAG_WORDS = (b"alloc", b"free", b"deinit", b"leaked", b"memory address", b"double free", b"unauthori")
F_LEAK = 8 | 16  # "leaked" and "memory address": a leak report
F_DOUBLE_FREE = 32
F_UNAUTH = 64


def _flags(msg: bytes) -> int:
    """Which of the words :func:`add_level_group` looks for occur in ``msg`` (a bit mask, case-insensitive)."""
    low = msg.lower()
    return sum(1 << i for i, w in enumerate(_FLAG_WORDS) if w in low)


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


def add_level_group(acc: Acc, key: ErrKey, n: int, b: int | None, first: float | None, last: float | None,
                    example: bytes, seq: int, *, other: bool = False) -> None:
    """Count ``n`` error/warning lines of one group; ``example`` is its first line (line number ``seq``).

    The key's kind: ``"z"`` a Zig level line (``example`` is the text after the prefix), ``"p"`` a plain line
    (``Warn:``, ``Connection error:``; the whole line), ``"c"`` a crash (``thread N panic: ...``).
    """
    level_b, scope_b, _norm, flags, _kind = key
    level = level_b.decode("ascii")
    acc.levels[level] += n
    for i, word in enumerate(("alloc", "free", "deinit")):
        if flags & (1 << i):
            acc.alloc_mentions[word] += n
    if b is not None:
        acc.buckets[(b, level)] += n
    scope = scope_b.decode("utf-8", "replace")
    if scope in _GPA_SCOPES:
        acc.allocator[f"error({scope})"] += n
    if flags & F_LEAK == F_LEAK:
        acc.allocator["leak reports"] += n
    if flags & F_DOUBLE_FREE:
        acc.allocator["double free"] += n
    if level == "warning" and flags & F_UNAUTH:
        acc.requests["unauth"] += n
        if b is not None:
            acc.buckets[(b, "unauth")] += n
    mine = None if other else acc.errors.get(key)
    if other or (mine is None and len(acc.errors) >= MAX_GROUPS):
        acc.other_errors[level] += n
    elif mine is None:
        acc.errors[key] = [n, first, last, example, seq]
    else:
        mine[0] += n
        mine[1] = _min(mine[1], first)
        mine[2] = _max(mine[2], last)
        if seq < mine[4]:
            mine[3], mine[4] = example, seq


# --- message blocks (journal entries, mixed or unordered text) ---------------------------------------
_BANNER = b"Main Token:"


def scan_messages(acc: Acc, msgs: list[bytes], tss: list[float | None], seqs: list[int] | None = None,
                  pids: list[int | None] | None = None, *, bucket: int | None) -> None:
    """Count a list of messages (one bucket) with the same rules as a text block.

    ``seqs[i]`` is the line number of message i's first line (a message with newlines is several lines; default:
    consecutive from ``acc.lines``), ``pids[i]`` its pid (default None). ``acc.lines`` is the caller's to count.
    """
    if not msgs:
        return
    if seqs is None:
        seqs = list(range(acc.lines, acc.lines + len(msgs)))
    if pids is None:
        pids = [None] * len(msgs)
    offsets: list[int] = []
    pos = 0
    for m in msgs:
        offsets.append(pos)
        pos += len(m) + 1
    blob = b"\n" + b"\n".join(msgs) + b"\n"

    def index(p: int) -> int:  # the match starts at the newline before its line
        return max(bisect.bisect_right(offsets, p) - 1, 0)

    def seq_at(p: int) -> int:
        i = index(p)
        return seqs[i] + blob.count(b"\n", offsets[i] + 1, p + 1)

    where = Where(ts_at=lambda p: tss[index(p)], seq_at=seq_at, pid_at=lambda p: pids[index(p)])
    scan_block(acc, blob, 0, len(blob), sep=b"\n", bucket=bucket, where=where)
