"""Parse leak reports: AddressSanitizer/LeakSanitizer, valgrind memcheck, Zig's debug allocator.

``parse_leak_report(text)`` never raises for odd text: text that is no leak report gives
a :class:`LeakReport` with ``recognized=False``; a report cut in the middle keeps what is
complete and sets ``truncated=True``. Journal prefixes (``short-iso``/``short``) and
valgrind's ``==pid==`` prefixes are stripped first, so lines may come from journald.
Data classes live in :mod:`zcnb.leaks.model`; this module holds the line parser.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from ..exceptions import LeakReportError
from ..files import open_input
from .model import LEAK_KINDS, Frame, LeakRecord, LeakReport, SiteStat, is_runtime_frame

__all__ = ["Frame", "LeakRecord", "LeakReport", "SiteStat", "is_runtime_frame", "parse_leak_file", "parse_leak_report"]

_JOURNAL = re.compile(
    r"^(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d+)?) \S+ [^\s:\[]+(?:\[\d+\])?: ?"
)
_VG_PREFIX = re.compile(r"^(?:==|--|\*\*)(\d+)(?:==|--|\*\*) ?")
_NUM = r"([\d,]+)"
# ASan / LSan
_ASAN_HEADER = re.compile(r"ERROR: (LeakSanitizer|AddressSanitizer): detected memory leaks")
_ASAN_RECORD = re.compile(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) allocated from:")
_ASAN_DOUBLE = re.compile(r"ERROR: AddressSanitizer: attempting double-free on (0x[0-9a-fA-F]+)")
_ASAN_FRAME = re.compile(r"^\s*#\d+\s+(0x[0-9a-fA-F]+)\s+(?:in\s+(.*?)\s+)?(\S+)\s*$")
_ASAN_SUMMARY = re.compile(r"^SUMMARY: (AddressSanitizer|LeakSanitizer): (\d+) byte\(s\) leaked in (\d+) allocation\(s\)")
# valgrind memcheck
_VG_HEADER = re.compile(r"^(?:Memcheck, a memory error detector|HEAP SUMMARY:)")
_VG_RECORD = re.compile(
    rf"^{_NUM}(?: \({_NUM} direct, {_NUM} indirect\))? bytes in {_NUM} blocks are "
    rf"(definitely lost|indirectly lost|possibly lost|still reachable) in loss record {_NUM} of {_NUM}"
)
_VG_INVALID_FREE = re.compile(r"^Invalid free\(\) / delete / delete\[\] / realloc\(\)")
_VG_FRAME = re.compile(r"^\s+(?:at|by) (0x[0-9A-Fa-f]+): (.*?)(?: \((.*)\))?\s*$")
_VG_SUMMARY = re.compile(rf"^\s*(definitely lost|indirectly lost|possibly lost|still reachable|suppressed): {_NUM} bytes in {_NUM} blocks")
_VG_LEAK_SUMMARY = re.compile(r"^LEAK SUMMARY:|^All heap blocks were freed")
_VG_KIND = {"definitely lost": "definitely", "indirectly lost": "indirect", "possibly lost": "possibly",
            "still reachable": "still-reachable", "suppressed": "suppressed"}
# Zig debug allocator (0.11+ "gpa" scope, 0.15+ "DebugAllocator"), std.testing.allocator
_ZIG_LEAK = re.compile(r"^(?:error\((?:gpa|DebugAllocator)\): |\[gpa\] \(err\): )memory address (0x[0-9a-fA-F]+) leaked:")
_ZIG_SAFE_LEAK = re.compile(r"^(?:error\(\w+\): |\[\w+\] \(err\): )leaked \[addr: ([0-9a-fA-Fx]+), len: (\d+)")
_ZIG_DOUBLE = re.compile(r"^(?:error\((?:gpa|DebugAllocator)\): |\[gpa\] \(err\): )?Double free detected\.")
_ZIG_MISMATCH = re.compile(
    r"^(?:error\((?:gpa|DebugAllocator)\): |\[gpa\] \(err\): )?Allocation size (\d+) bytes does not match free size (\d+)"
)
_ZIG_FRAME = re.compile(r"^(.+?):(\d+|\?):(\d+|\?): (0x[0-9a-fA-F]+) in (.+?) \(([^()]*)\)\s*$")
_ZIG_SECTION = re.compile(r"^\s*(First free|Second free|Free):\s*$")
_ZIG_TESTS_LEAKED = re.compile(r"^(\d+) tests? leaked memory")
_ZIG_SKIPPED = re.compile(r"^\(additional stack frames may have been skipped")
_CARET = re.compile(r"^\s*\^\s*$")

_MAX_FRAMES = 256  # a frame list longer than this is garbage, not a stack
MAX_RECORDS = 10_000  # records kept in LeakReport.records; totals and sites always cover every record
_MAX_CACHE = 200_000  # distinct frame lines / program call sites remembered (bounds memory on hostile input)
_ANON = re.compile(r"__(?:anon|func)_\d+$")
_API_SUFFIX = re.compile(r"(?:ContextAdapted|Adapted|Context|AssumeCapacity)$")


def _to_int(text: str | None) -> int | None:
    if text is None or text == "?":
        return None
    try:
        return int(text.replace(",", ""))
    except ValueError:
        return None


def _decode(text: object) -> list[str]:
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", errors="replace").splitlines()
    if isinstance(text, str):
        return text.splitlines()
    if isinstance(text, Iterable):
        out: list[str] = []
        for item in text:
            if isinstance(item, (bytes, bytearray)):
                item = bytes(item).decode("utf-8", errors="replace")
            if not isinstance(item, str):
                raise LeakReportError(f"leak report lines must be text, got {type(item).__name__}",
                                      hint="pass the report as str/bytes or a list of message strings")
            out.extend(item.splitlines() or [""])
        return out
    raise LeakReportError(f"cannot read a leak report from {type(text).__name__}",
                          hint="pass the report as str/bytes or a list of message strings")


def _strip(line: str) -> str:
    if "\x00" in line:
        line = line.replace("\x00", "")
    line = line.rstrip("\r")
    c = line[:1]
    if c.isdigit() or c.isupper():  # a journal prefix starts with a year or a month name
        m = _JOURNAL.match(line)
        if m:
            line = line[m.end():]
            c = line[:1]
    if c in ("=", "-", "*"):
        m = _VG_PREFIX.match(line)
        if m:
            line = line[m.end():]
    return line


def _asan_frame(m: re.Match[str]) -> Frame:
    address, func, loc = m.group(1), m.group(2), m.group(3)
    if loc.startswith("(") and loc.endswith(")"):
        return Frame(function=func, address=address, object=loc[1:-1])
    parts = loc.split(":")
    nums: list[int | None] = []
    while len(parts) > 1 and parts[-1].isdigit() and len(nums) < 2:
        nums.insert(0, int(parts.pop()))
    file = ":".join(parts)
    line = nums[0] if nums else None
    col = nums[1] if len(nums) > 1 else None
    return Frame(function=func, file=file, line=line, column=col, address=address)


def _vg_frame(m: re.Match[str]) -> Frame:
    address, func, where = m.group(1), m.group(2), m.group(3) or ""
    if where.startswith("in "):
        return Frame(function=func, address=address, object=where[3:])
    file, _, line = where.rpartition(":")
    if file and line.isdigit():
        return Frame(function=func, file=file, line=int(line), address=address)
    return Frame(function=func, file=where or None, address=address)


def _zig_frame(m: re.Match[str]) -> Frame:
    func = m.group(5)
    return Frame(function=None if func == "???" else func, file=None if m.group(1) == "???" else m.group(1),
                 line=_to_int(m.group(2)), column=_to_int(m.group(3)), address=m.group(4), object=m.group(6))


class _Site:
    """Running totals of one allocation site (the parser aggregates while streaming)."""

    __slots__ = (
        "attributed",
        "blocks",
        "bytes",
        "file",
        "function",
        "kinds",
        "lines",
        "records",
        "tail",
        "via",
    )

    def __init__(self, function: str, file: str | None) -> None:
        self.function, self.file = function, file
        self.lines: set[int] = set()
        self.records = 0
        self.bytes: int | None = None
        self.blocks: int | None = None
        self.kinds: set[str] = set()
        self.attributed = 0
        self.tail: str | None = None  # std-only groups: the outermost library function seen
        self.via: list[str] = []  # library functions of the std-only traces merged here

    def add(self, rec: LeakRecord, line: int | None) -> None:
        self.records += 1
        if rec.bytes is not None:
            self.bytes = rec.bytes if self.bytes is None else self.bytes + rec.bytes
        if rec.blocks is not None:
            self.blocks = rec.blocks if self.blocks is None else self.blocks + rec.blocks
        self.kinds.add(rec.kind)
        if line is not None and len(self.lines) < 64:
            self.lines.add(line)

    def merge(self, other: _Site) -> None:
        self.records += other.records
        self.attributed += other.records
        for attr in ("bytes", "blocks"):
            v = getattr(other, attr)
            if v is not None:
                mine = getattr(self, attr)
                setattr(self, attr, v if mine is None else mine + v)
        self.kinds |= other.kinds

    def stat(self) -> SiteStat:
        via = tuple(self.via)
        return SiteStat(function=self.function, file=self.file, lines=tuple(sorted(self.lines)), records=self.records,
                        bytes=self.bytes, blocks=self.blocks, kinds=tuple(sorted(self.kinds)),
                        attributed=self.attributed, via=via)


def _api_names(function: str) -> set[str]:
    """``putContext`` -> {putContext, put}; ``getOrPutContextAdapted__anon_1`` -> {..., getOrPut}."""
    base = _ANON.sub("", function.rsplit(".", 1)[-1])
    names = {base}
    while (stripped := _API_SUFFIX.sub("", base)) != base and stripped:
        names.add(stripped)
        base = stripped
    return names


class _Parser:
    """One pass over the lines; ``cur`` is the record being filled."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self.max_records = max_records
        self.record_count = 0
        self.kind_totals: dict[str, dict[str, int | None]] = {}
        self.sites: dict[tuple[str, str | None, bool], _Site] = {}  # leak kinds; key (function, file, std_only)
        self.sites_all: dict[tuple[str, str | None, bool], _Site] = {}  # leak kinds and still-reachable
        self.frame_cache: dict[str, tuple[Frame, bool]] = {}  # frame line -> (frame, is runtime)
        self.source_text: dict[tuple[str, int], str] = {}  # program call site -> its source line (Zig prints it)
        self.site_runs: dict[tuple[str, int], int] = {}  # program call site -> records whose trace passes it
        self.last_frame: tuple[Frame, bool] | None = None
        self.rt_ids: dict[int, bool] = {}  # id(frame) -> is runtime, for the frames held by frame_cache
        self.records: list[LeakRecord] = []
        self.tools: list[str] = []
        self.summary: dict[str, dict[str, dict[str, int | None]]] = {}
        self.notes: list[str] = []
        self.cur: dict[str, object] | None = None
        self.section = "frames"  # or "free_frames" (zig double free / size mismatch traces)
        self.zig_source = 0  # lines of source + caret still expected after a zig frame
        self.asan_open = False
        self.vg_loss_total = 0
        self.vg_loss_seen = 0
        self.vg_heap_summary = False
        self.vg_leak_summary = False
        self.tests_leaked: int | None = None
        self.last_line = ""
        self.partial = False  # the current line is the last one and has no newline: it may be cut

    def _tool(self, tool: str) -> None:
        if tool not in self.tools:
            self.tools.append(tool)

    def _open(self, **fields: object) -> None:
        self._close(complete=True)
        self.cur = {"frames": [], "free_frames": [], **fields}
        self.section = "frames"
        self.zig_source = 0
        self._tool(str(fields["tool"]))

    def _close(self, *, complete: bool) -> None:
        cur, self.cur = self.cur, None
        if cur is None:
            return
        frames: tuple[Frame, ...] = tuple(cur.pop("frames"))  # type: ignore[arg-type]
        free_frames: tuple[Frame, ...] = tuple(cur.pop("free_frames"))  # type: ignore[arg-type]
        rec = LeakRecord(frames=frames, free_frames=free_frames, complete=complete and bool(frames),
                         **cur)  # type: ignore[arg-type]
        self.record_count += 1
        if len(self.records) < self.max_records:
            self.records.append(rec)
        self._aggregate(rec)

    def _runtime(self, frame: Frame) -> bool:
        rt = self.rt_ids.get(id(frame))  # frames of the line cache live as long as the parser: ids are stable
        return is_runtime_frame(frame) if rt is None else rt

    def _aggregate(self, rec: LeakRecord) -> None:
        t = self.kind_totals.setdefault(rec.kind, {"bytes": None, "blocks": None, "records": 0})
        if rec.bytes is not None:
            t["bytes"] = rec.bytes + (t["bytes"] or 0)
        if rec.blocks is not None:
            t["blocks"] = rec.blocks + (t["blocks"] or 0)
        t["records"] = (t["records"] or 0) + 1
        if rec.kind not in LEAK_KINDS and rec.kind != "still-reachable":
            return
        site: Frame | None = None
        seen: set[tuple[str, int]] = set()
        for f in rec.frames:
            if f.file and f.line is not None and not self._runtime(f):
                if site is None:
                    site = f
                key = (f.file, f.line)
                if key not in seen and (key in self.site_runs or len(self.site_runs) < _MAX_CACHE):
                    seen.add(key)
                    self.site_runs[key] = self.site_runs.get(key, 0) + 1
            elif site is None and not self._runtime(f):
                site = f
        std_only = site is None and bool(rec.frames)
        if site is None:
            site = rec.site
        key3 = (site.function or "???", site.file, std_only) if site else ("(no stack)", None, False)
        tables = (self.sites, self.sites_all) if rec.kind in LEAK_KINDS else (self.sites_all,)
        for table in tables:
            group = table.get(key3)
            if group is None:
                group = table[key3] = _Site(key3[0], key3[1])
                if std_only:
                    group.tail = rec.frames[-1].function
            group.add(rec, site.line if site else None)

    def _add_frame(self, frame: Frame) -> None:
        assert self.cur is not None
        frames = self.cur[self.section]
        if isinstance(frames, list) and len(frames) < _MAX_FRAMES:
            frames.append(frame)

    def feed(self, line: str, *, partial: bool = False) -> None:
        self.partial = partial
        if line.strip():
            self.last_line = line
        if self.cur is not None and self.cur["tool"] == "zig" and self._zig_continuation(line):
            return
        if self.cur is not None and self.cur["tool"] in ("asan", "lsan"):
            m = _ASAN_FRAME.match(line)
            if m:
                self._add_frame(_asan_frame(m))
                return
        if self.cur is not None and self.cur["tool"] == "valgrind":
            m = _VG_FRAME.match(line)
            if m:
                self._add_frame(_vg_frame(m))
                return
        self._header(line)

    def _zig_continuation(self, line: str) -> bool:
        cached = self.frame_cache.get(line)
        m = None if cached is not None else _ZIG_FRAME.match(line)
        if self.partial and not (m or cached) and not (self.zig_source == 1 and _CARET.match(line)):
            self.zig_source = max(self.zig_source, 1)  # a cut last line: the record stays incomplete
            return True
        if m and not self.partial:
            frame = _zig_frame(m)
            cached = (frame, is_runtime_frame(frame))
            if len(self.frame_cache) < _MAX_CACHE:
                self.frame_cache[line] = cached
                self.rt_ids[id(frame)] = cached[1]
        elif m:
            frame = _zig_frame(m)
            cached = (frame, is_runtime_frame(frame))
        if cached is not None:
            self._add_frame(cached[0])
            self.last_frame = cached
            self.zig_source = 2 if cached[0].file is not None else 0
            return True
        if _ZIG_SECTION.match(line):
            self.section = "free_frames"
            if self.cur is not None:
                self.cur["free_frames"] = []  # keep only the last free trace (the offending one)
            self.zig_source = 0
            return True
        if self.zig_source == 2 and not _is_header(line):
            self.zig_source = 1  # the source line under a frame
            lf = self.last_frame
            if lf is not None and not lf[1] and lf[0].file and lf[0].line is not None:
                key = (lf[0].file, lf[0].line)
                if key not in self.source_text and len(self.source_text) < _MAX_CACHE:
                    self.source_text[key] = line.strip()[:400]
            return True
        if self.zig_source == 1 and _CARET.match(line):
            self.zig_source = 0
            return True
        if _ZIG_SKIPPED.match(line):
            return True
        self.zig_source = 0
        if not line.strip() and self.cur is not None and self.cur["frames"]:
            self._close(complete=True)
            return True
        return False

    def _header(self, line: str) -> None:
        text = line.strip()
        if not text:
            if self.cur is not None and self.cur["tool"] != "zig" and not self.partial:
                self._close(complete=True)
            return
        m = _ZIG_LEAK.match(text)
        if m:
            self._open(tool="zig", kind="leaked", bytes=None, blocks=1, address=m.group(1))
            return
        m = _ZIG_SAFE_LEAK.match(text)
        if m:
            addr = m.group(1) if m.group(1).startswith("0x") else "0x" + m.group(1)
            self._open(tool="zig", kind="leaked", bytes=int(m.group(2)), blocks=1, address=addr)
            return
        if _ZIG_DOUBLE.match(text):
            self._open(tool="zig", kind="double-free", bytes=None, blocks=1)
            return
        m = _ZIG_MISMATCH.match(text)
        if m:
            self._open(tool="zig", kind="size-mismatch", bytes=int(m.group(1)), blocks=1,
                       note=f"allocated {m.group(1)} bytes, freed as {m.group(2)} bytes")
            return
        m = _ZIG_TESTS_LEAKED.match(text)
        if m:
            self._close(complete=True)
            self.tests_leaked = int(m.group(1))
            self._tool("zig")
            return
        self._header_c(text)

    def _header_c(self, text: str) -> None:
        m = _ASAN_RECORD.match(text)
        if m and self.asan_open:
            self._open(tool="asan", kind=m.group(1).lower(), bytes=int(m.group(2)), blocks=int(m.group(3)))
            return
        if _ASAN_HEADER.search(text):
            self._close(complete=True)
            self.asan_open = True
            self._tool("asan")
            return
        m = _ASAN_DOUBLE.search(text)
        if m:
            self._open(tool="asan", kind="double-free", bytes=None, blocks=1, address=m.group(1))
            return
        m = _ASAN_SUMMARY.match(text)
        if m:
            self._close(complete=True)
            self.asan_open = False
            tool = "asan" if m.group(1) == "AddressSanitizer" else "lsan"
            self.summary[tool] = {"leaked": {"bytes": int(m.group(2)), "blocks": int(m.group(3))}}
            return
        m = _VG_RECORD.match(text)
        if m:
            self._open(tool="valgrind", kind=_VG_KIND[m.group(5)], bytes=_to_int(m.group(2) or m.group(1)),
                       blocks=_to_int(m.group(4)), indirect_bytes=_to_int(m.group(3)),
                       note=f"loss record {m.group(6)} of {m.group(7)}")
            self.vg_loss_seen = max(self.vg_loss_seen, _to_int(m.group(6)) or 0)
            self.vg_loss_total = max(self.vg_loss_total, _to_int(m.group(7)) or 0)
            return
        if _VG_INVALID_FREE.match(text):
            self._open(tool="valgrind", kind="double-free", bytes=None, blocks=1, note="invalid free (double free?)")
            return
        m = _VG_SUMMARY.match(text)
        if m and self.vg_leak_summary:
            kind = _VG_KIND[m.group(1)]
            self.summary.setdefault("valgrind", {})[kind] = {"bytes": _to_int(m.group(2)), "blocks": _to_int(m.group(3))}
            return
        if _VG_LEAK_SUMMARY.match(text):
            self._close(complete=True)
            self.vg_leak_summary = True
            self._tool("valgrind")
            return
        if _VG_HEADER.match(text):
            self._close(complete=True)
            self.vg_heap_summary = True
            self._tool("valgrind")
            return
        # Any other line ends a record (interleaved log lines, the end of a stack), unless it is
        # a cut last line: then the record stays open and counts as incomplete.
        if self.cur is not None and self.cur["frames"] and not self.partial:
            self._close(complete=True)

    def finish(self) -> LeakReport:
        truncated = False
        if self.cur is not None:
            # Only a Zig stack can be seen to be whole (it ends with a caret line); others need a blank line.
            complete = (self.cur["tool"] == "zig" and bool(self.cur["frames"]) and self.zig_source == 0
                        and bool(_CARET.match(self.last_line) or _ZIG_SKIPPED.match(self.last_line.strip())))
            truncated = not complete
            self._close(complete=complete)
        if self.asan_open:
            truncated = True
            self.notes.append("sanitizer report has no SUMMARY line: it was cut off")
        if self.vg_loss_total and self.vg_loss_seen < self.vg_loss_total:
            truncated = True
            self.notes.append(f"valgrind: saw loss record {self.vg_loss_seen} of {self.vg_loss_total}")
        elif (self.vg_loss_total or self.vg_heap_summary) and not self.vg_leak_summary:
            truncated = True
            self.notes.append("valgrind report has no LEAK SUMMARY: it was cut off")
        if truncated and not any("cut" in n or "saw loss" in n for n in self.notes):
            self.notes.append("the last record is incomplete: the report was cut off")
        bare = sum(1 for r in self.records if r.frames and all(f.file is None and f.function is None for f in r.frames))
        if bare:
            self.notes.append(f"{bare} record(s) have stack traces that are not symbolized (???): the program could "
                              "not read its own debug info when it printed them (e.g. a lowered open-files limit, or "
                              "a stripped binary)")
        attributed = self._attribute(self.sites, notes=True)
        self._attribute(self.sites_all, notes=False)
        records = tuple(self._retool(self._with_attribution(r, attributed)) for r in self.records)
        if self.record_count > len(records):
            self.notes.append(f"{self.record_count} records parsed, the first {len(records)} kept with their stacks; "
                              "totals and sites cover all of them")
        leak_sites, all_sites = self._site_stats()
        return LeakReport(records=records, tools=tuple(self._final_tools()), recognized=bool(self.tools),
                          truncated=truncated, tool_summary=self.summary, tests_leaked=self.tests_leaked,
                          notes=tuple(self.notes), record_count=self.record_count, kind_totals=self.kind_totals,
                          site_stats=leak_sites, reachable_stats=all_sites)

    def _attribute(self, table: dict[tuple[str, str | None, bool], _Site], *, notes: bool,
                   ) -> dict[tuple[str, str | None], tuple[Frame, str]]:
        """Link std-only groups (traces cut inside the standard library) to a program call site.

        The allocator keeps only the innermost frames, so a hash-map growth inside ``put`` shows
        ``allocate <- grow <- ... <- putContext`` and nothing of the program. Its caller is a line of the
        program's own source that calls that library function (``.put(`` for ``putContext``); Zig prints
        the source line of every frame, so the candidates are the program call sites seen in this report.
        A site that left K such records ran at least K times, so only call sites seen in at least K
        records qualify; the most-seen one wins, and a tie leaves the group unattributed (said in a note).
        """
        out: dict[tuple[str, str | None], tuple[Frame, str]] = {}
        say = self.notes.append if notes else (lambda _text: None)
        for (func, file, std_only), group in list(table.items()):
            if not std_only or not group.tail:
                continue
            names = _api_names(group.tail)
            pattern = re.compile(r"[.\s(]\s*(?:" + "|".join(map(re.escape, sorted(names))) + r")\s*\(")
            calls = [k for k, text in self.source_text.items() if pattern.search(text)]
            fit = sorted(((self.site_runs.get(k, 0), k) for k in calls if self.site_runs.get(k, 0) >= group.records),
                         reverse=True)
            via = f"std {group.tail}"
            if not fit or (len(fit) > 1 and fit[0][0] == fit[1][0]):
                why = "no call site of it in the program's frames" if not fit else "several equally likely call sites"
                say(f"{group.records} record(s) end inside the standard library ({group.tail}) and "
                                  f"stay unattributed: {why}")
                continue
            (file_, line_) = fit[0][1]
            target = self._program_frame(file_, line_)
            if target is None:
                continue
            out[(func, file)] = (target, via)
            dest_key = (target.function or "???", target.file, False)
            dest = table.get(dest_key)
            if dest is None:
                dest = table[dest_key] = _Site(dest_key[0], dest_key[1])
            dest.merge(group)
            dest.lines.add(line_)
            if via not in dest.via:
                dest.via.append(via)
            del table[(func, file, std_only)]
            others = ", ".join(f"{k[0]}:{k[1]} ({n})" for n, k in fit[1:4])
            say(f"{group.records} record(s) whose trace ends inside the standard library ({group.tail}) "
                              f"attributed to {target.function} ({file_}:{line_}), the program's call site of it seen "
                              f"in {fit[0][0]} record(s)" + (f"; other candidates: {others}" if others else ""))
        return out

    def _program_frame(self, file: str, line: int) -> Frame | None:
        for frame, runtime in self.frame_cache.values():
            if not runtime and frame.file == file and frame.line == line:
                return frame
        for rec in self.records:
            for f in rec.frames:
                if f.file == file and f.line == line:
                    return f
        return None

    @staticmethod
    def _with_attribution(rec: LeakRecord, attributed: dict[tuple[str, str | None], tuple[Frame, str]]) -> LeakRecord:
        if not attributed or not rec.std_only:
            return rec
        site = rec.site
        hit = attributed.get((site.function or "???", site.file)) if site else None
        return dataclasses.replace(rec, attributed_to=hit[0]) if hit else rec

    def _site_stats(self) -> tuple[tuple[SiteStat, ...], tuple[SiteStat, ...]]:
        def order(st: SiteStat) -> tuple[int, int, str]:
            return (-(st.bytes if st.bytes is not None else -1), -st.records, st.function)

        leaks = [g.stat() for g in self.sites.values()]
        every = [g.stat() for g in self.sites_all.values()]
        return tuple(sorted(leaks, key=order)), tuple(sorted(every, key=order))

    def _final_tools(self) -> list[str]:
        return ["lsan" if t == "asan" and "lsan" in self.summary and "asan" not in self.summary else t
                for t in self.tools]

    def _retool(self, rec: LeakRecord) -> LeakRecord:
        # LeakSanitizer alone (-fsanitize=leak) is only told apart by its SUMMARY line or interceptor path.
        if rec.tool != "asan":
            return rec
        lsan = ("lsan" in self.summary and "asan" not in self.summary) or any(
            "lsan_" in (f.file or "") for f in rec.frames)
        return rec.with_tool("lsan") if lsan else rec


def _is_header(line: str) -> bool:
    text = line.strip()
    if not ("leak" in text or "free" in text or "Allocation size" in text):  # cheap test first: source lines
        return False
    return bool(_ZIG_LEAK.match(text) or _ZIG_SAFE_LEAK.match(text) or _ZIG_DOUBLE.match(text)
                or _ZIG_MISMATCH.match(text) or _ZIG_TESTS_LEAKED.match(text))


def parse_leak_report(text: str | bytes | Iterable[str], *, max_records: int = MAX_RECORDS) -> LeakReport:
    """Parse a leak report (ASan/LSan, valgrind memcheck, Zig debug allocator) from text.

    Accepts str, bytes (decoded as UTF-8 with replacement) or an iterable of lines / journal
    messages. Unknown text gives ``recognized=False``; a cut report gives ``truncated=True``.
    ``records`` keeps the first ``max_records`` records; totals and sites cover all of them.
    """
    parser = _Parser(max_records)
    lines = _decode(text)
    cut = isinstance(text, (str, bytes, bytearray, memoryview)) and len(text) > 0 and (
        str(text[-1:]) if isinstance(text, str) else bytes(text[-1:]).decode("latin-1")) not in ("\n", "\r")
    for i, raw in enumerate(lines):
        parser.feed(_strip(raw), partial=cut and i == len(lines) - 1)
    return parser.finish()


def _file_lines(fh: Any) -> Iterator[tuple[str, bool]]:
    """(line, is a cut last line) from a binary file, one line at a time (bounded memory)."""
    prev: bytes | None = None
    for raw in fh:
        if prev is not None:
            yield prev.decode("utf-8", errors="replace").rstrip("\r\n"), False
        prev = raw
    if prev is not None:
        cut = not prev.endswith((b"\n", b"\r"))
        yield prev.decode("utf-8", errors="replace").rstrip("\r\n"), cut


def parse_leak_file(path: str | os.PathLike[str], *, max_records: int = MAX_RECORDS) -> LeakReport:
    """Parse the report in ``path`` line by line (streamed: memory does not grow with the file; see
    :func:`parse_leak_report` for ``max_records``)."""
    parser = _Parser(max_records)
    with open_input(path, what="leak report file", error=LeakReportError, folder_hint="pass the report file") as fh:
        try:
            for line, cut in _file_lines(fh):
                for part in line.split("\r") if "\r" in line else (line,):
                    parser.feed(_strip(part), partial=cut)
        except OSError as exc:
            raise LeakReportError(f"cannot read leak report file {path}: {exc.strerror or exc}",
                                  hint="check the file", path=str(path)) from None
    return parser.finish()
