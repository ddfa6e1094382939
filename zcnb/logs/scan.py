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
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .skills import SKILL_TOKEN_RE, TOOL_SKILL_ARGS, canonical_skill

__all__ = ["ISO_LINE", "Acc", "add_level_group", "bucket_of", "line_ts", "scan_block", "scan_messages"]

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


@functools.lru_cache(maxsize=64)
def _level_regex(sep: bytes) -> re.Pattern[bytes]:
    """Level lines, anchored on ``sep`` (the syslog prefix's end `` ident[pid]: `` in short-iso text, newline in
    message blocks): a level counts only at the start of the message, as in the per-line rules."""
    return re.compile(re.escape(sep) + rb"(error|warning|debug)(?:\(([^)\n]*)\))?: ([^\n]*)")


# One pass keyed on the bracket tag: tool calls (skill name from the args JSON: the skill-name rule's tool
# form) and request kinds. Spaces after "name": never cross a line end (a message never continues into the next one).
_TAG_RE = re.compile(rb"\[(?:agent\] tool (?:" + TOOL_SKILL_ARGS + rb"|([\w.-]+) args=)|(heartbeat|ws)\] )")


@functools.lru_cache(maxsize=4096)  # a pure function of the text; shapes recur once per bucket
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
        dt = dt.replace(tzinfo=UTC)  # journalctl -o short-iso always has an offset; bare = UTC
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
    for raw, n in Counter(SKILL_TOKEN_RE.findall(buf, start, end)).items():
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
    seen: dict[tuple[bytes, bytes, bytes, int], list[Any]] = {}
    debug: Counter[bytes] = Counter()
    numb = _NUMB.sub
    for m in _level_regex(sep).finditer(buf, start, end):
        level = m.group(1)
        if level == b"debug":
            debug[m.group(3)] += 1
            continue
        msg = m.group(3)
        # the flags are part of the shape, so a group's example stands for every member whatever the chunking
        key = (level, m.group(2) or b"", numb(b"N", msg), _flags(msg))
        hit = seen.get(key)
        if hit is None:
            seen[key] = [1, m.start(), m.start(), msg]
        else:
            hit[0] += 1
            hit[2] = m.start()
    if debug:
        _debug_hits(acc, debug, b)
    for (level, scope, _norm, _fl), (n, first, last, example) in seen.items():
        add_level_group(acc, level.decode("ascii"), scope.decode("utf-8", "replace"), example, n, b,
                   ts_at(first), ts_at(last), redact)


_FLAG_WORDS = (b"alloc", b"free", b"deinit", b"leaked", b"memory address", b"double free", b"unauthori")


def _flags(msg: bytes) -> int:
    """Which of the words :func:`add_level_group` looks for occur in ``msg`` (a bit mask)."""
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


def add_level_group(acc: Acc, level: str, scope: str, raw: bytes, n: int, b: int | None,
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
