"""Result types of leak-report parsing: frames, records, sites and the report.

Allocation sites are grouped by the first frame in the user's code: allocator and runtime
frames (malloc & co., valgrind's preload, sanitizer interceptors, Zig's ``std`` library,
libc/ld.so, massif's page-allocation root) are skipped, see :func:`is_runtime_frame`.
"""

from __future__ import annotations

import dataclasses
import html
import re
from dataclasses import dataclass, field
from typing import Any

from ..units import format_bytes

__all__ = ["LEAK_KINDS", "Frame", "LeakRecord", "LeakReport", "SiteStat", "is_runtime_frame"]

#: kinds that count as memory lost (still-reachable, double-free and size-mismatch do not)
LEAK_KINDS = ("direct", "indirect", "definitely", "possibly", "leaked")

_RUNTIME_FUNCS = re.compile(
    r"^(?:malloc|calloc|realloc|reallocarray|free|strdup|strndup|memalign|posix_memalign|aligned_alloc|valloc|pvalloc"
    r"|mmap|mmap64|__mmap64|mremap|brk|sbrk|__GI_\w+|__libc_\w+|_start|__interceptor_\w+|___interceptor_\w+"
    r"|__asan_\w+|__lsan_\w+|__sanitizer_\w+|operator new.*|operator delete.*|_Znwm|_Znam|_dl_\w+|dl_main|openaux"
    r"|callMain|callMainWithArgs|main\.?\w*Terminal|posixCallMainAndExit|\?\?\?)$"
)
_RUNTIME_FILES = re.compile(
    r"(?:vg_replace_malloc|vgpreload_|libsanitizer|/asan_|/lsan_|asan_malloc|lsan_interceptors|(?:^|/)lib/std/"
    r"|(?:^|/)std/(?:heap|mem|array_list|hash_map|array_hash_map|start|debug|testing)|(?:^|/)lib/compiler/"
    r"|sysdeps/|libc_start|/libc\.so|/ld-linux|dl-\w+\.[ch]$|rtld\.c$|mmap64\.c$|^malloc\.c$)"
)
_RUNTIME_OBJECTS = re.compile(r"(?:^std\.zig$|^test_runner\.zig$|vgpreload_|/libc\.so|/ld-linux|libasan|liblsan)")


@dataclass(frozen=True)
class Frame:
    """One stack frame: function, source location, address, and the binary (``object``)."""

    function: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    address: str | None = None
    object: str | None = None

    @property
    def location(self) -> str:
        if not self.file:
            return self.object or "?"
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.function or '???'} ({self.location})"


def is_runtime_frame(frame: Frame) -> bool:
    """True for allocator / runtime / libc frames that are not the user's code."""
    if frame.function and _RUNTIME_FUNCS.match(frame.function.strip()):
        return True
    if frame.function and frame.function.startswith("(page allocation syscalls)"):
        return True
    if frame.file and _RUNTIME_FILES.search(frame.file):
        return True
    if frame.object and _RUNTIME_OBJECTS.search(frame.object):
        return True
    return not frame.function and not frame.file


@dataclass(frozen=True)
class LeakRecord:
    """One leak (or allocator error) with its allocation stack."""

    tool: str  # "asan" | "lsan" | "valgrind" | "zig"
    kind: str  # direct|indirect|definitely|possibly|still-reachable|leaked|double-free|size-mismatch
    bytes: int | None
    blocks: int | None
    frames: tuple[Frame, ...] = ()
    address: str | None = None
    indirect_bytes: int | None = None  # valgrind "48 (16 direct, 32 indirect) bytes"
    free_frames: tuple[Frame, ...] = ()  # Zig double free / size mismatch: the offending free
    note: str = ""
    complete: bool = True
    # For a trace that ends inside the standard library: the program's frame it is attributed to (see parse.py)
    attributed_to: Frame | None = None

    @property
    def std_only(self) -> bool:
        """True when no frame of the trace is in the program's own source (it ends inside a runtime/library)."""
        return bool(self.frames) and all(is_runtime_frame(f) for f in self.frames)

    @property
    def site(self) -> Frame | None:
        """The first frame in the user's code (else the attributed program frame, else the first named frame)."""
        if self.attributed_to is not None:
            return self.attributed_to
        for f in self.frames:
            if not is_runtime_frame(f):
                return f
        for f in self.frames:
            if f.function and f.function != "???":
                return f
        return self.frames[0] if self.frames else None

    def with_tool(self, tool: str) -> LeakRecord:
        return dataclasses.replace(self, tool=tool)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        site = self.site
        d["site"] = site.to_dict() if site else None
        return d


@dataclass(frozen=True)
class SiteStat:
    """Leaks grouped by allocation site (function + file of the first user frame)."""

    function: str
    file: str | None
    lines: tuple[int, ...]
    records: int
    bytes: int | None  # None when no record of this site had a known size (Zig leaks)
    blocks: int | None
    kinds: tuple[str, ...]
    attributed: int = 0  # records whose trace ends in the standard library, attributed here (see ``via``)
    via: tuple[str, ...] = ()  # the library functions those traces end in, e.g. ("std hash_map putContext",)

    @property
    def label(self) -> str:
        """``N records`` with the attributed part said: ``140 (20 attributed: trace ends in std putContext)``."""
        if not self.attributed:
            return str(self.records)
        return f"{self.records} ({self.attributed} attributed: trace ends in {', '.join(self.via)})"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


@dataclass(frozen=True)
class LeakReport:
    """All records of one report, with totals per kind and top allocation sites."""

    records: tuple[LeakRecord, ...] = ()
    tools: tuple[str, ...] = ()
    recognized: bool = False
    truncated: bool = False
    tool_summary: dict[str, dict[str, dict[str, int | None]]] = field(default_factory=dict)
    tests_leaked: int | None = None
    notes: tuple[str, ...] = ()
    # Set by the parser, which aggregates while streaming: totals and sites then cover every record, while
    # ``records`` keeps only the first ``max_records`` (memory stays bounded on a million-record report).
    record_count: int | None = None
    kind_totals: dict[str, dict[str, int | None]] | None = None
    site_stats: tuple[SiteStat, ...] | None = None  # every leak site, largest first
    reachable_stats: tuple[SiteStat, ...] | None = None  # every site including still-reachable

    @property
    def n_records(self) -> int:
        """All records parsed (``records`` may hold fewer, see ``record_count``)."""
        return self.record_count if self.record_count is not None else len(self.records)

    @property
    def totals(self) -> dict[str, dict[str, int | None]]:
        """Per kind: ``{"bytes": int|None, "blocks": int|None, "records": int}``."""
        if self.kind_totals is not None:
            return {k: dict(v) for k, v in self.kind_totals.items()}
        out: dict[str, dict[str, int | None]] = {}
        for r in self.records:
            t = out.setdefault(r.kind, {"bytes": None, "blocks": None, "records": 0})
            t["bytes"] = _add(t["bytes"], r.bytes)
            t["blocks"] = _add(t["blocks"], r.blocks)
            t["records"] = (t["records"] or 0) + 1
        return out

    @property
    def leaks(self) -> tuple[LeakRecord, ...]:
        return tuple(r for r in self.records if r.kind in LEAK_KINDS)

    @property
    def errors(self) -> tuple[LeakRecord, ...]:
        """Double frees and size mismatches."""
        return tuple(r for r in self.records if r.kind in ("double-free", "size-mismatch"))

    @property
    def leaked_bytes(self) -> int | None:
        """Bytes definitely lost (direct + indirect + definitely + leaked); None if no size is known."""
        total: int | None = None
        for kind, t in self.totals.items():
            if kind in ("direct", "indirect", "definitely", "leaked"):
                total = _add(total, t["bytes"])
        return total

    def top_sites(self, n: int = 10, *, include_reachable: bool = False) -> tuple[SiteStat, ...]:
        """Leak sites, largest first (by bytes, then by number of records)."""
        pre = self.reachable_stats if include_reachable else self.site_stats
        if pre is not None:
            return pre[:n]
        kinds = LEAK_KINDS + (("still-reachable",) if include_reachable else ())
        groups: dict[tuple[str, str | None], list[LeakRecord]] = {}
        for r in self.records:
            if r.kind not in kinds:
                continue
            site = r.site
            key = (site.function or "???", site.file) if site else ("(no stack)", None)
            groups.setdefault(key, []).append(r)
        stats = []
        for (func, file), recs in groups.items():
            b: int | None = None
            blk: int | None = None
            for r in recs:
                b, blk = _add(b, r.bytes), _add(blk, r.blocks)
            lines = sorted({s.line for r in recs if (s := r.site) is not None and s.line is not None})
            attributed = [r for r in recs if r.attributed_to is not None]
            via = sorted({f"std {r.frames[-1].function}" for r in attributed if r.frames})
            stats.append(SiteStat(function=func, file=file, lines=tuple(lines), records=len(recs), bytes=b,
                                  blocks=blk, kinds=tuple(sorted({r.kind for r in recs})), attributed=len(attributed),
                                  via=tuple(via)))
        stats.sort(key=lambda s: (-(s.bytes if s.bytes is not None else -1), -s.records, s.function))
        return tuple(stats[:n])

    @property
    def summary(self) -> str:
        if not self.recognized:
            return "no leak report recognised in the text"
        parts = [f"{'/'.join(self.tools)}: {self.n_records} record(s)"]
        for kind, t in self.totals.items():
            parts.append(f"{kind} {format_bytes(t['bytes'])} in {t['blocks']} block(s)")
        if self.tests_leaked is not None:
            parts.append(f"{self.tests_leaked} test(s) leaked memory")
        top = self.top_sites(1)
        if top:
            s = top[0]
            parts.append(f"top site {s.function} ({s.file or '?'}) {format_bytes(s.bytes)} x{s.label}")
        if self.truncated:
            parts.append("TRUNCATED: the report was cut off, totals are a lower bound")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recognized": self.recognized,
            "truncated": self.truncated,
            "tools": list(self.tools),
            "totals": self.totals,
            "leaked_bytes": self.leaked_bytes,
            "tests_leaked": self.tests_leaked,
            "tool_summary": self.tool_summary,
            "top_sites": [s.to_dict() for s in self.top_sites()],
            "records_total": self.n_records,
            "records_kept": len(self.records),
            "records": [r.to_dict() for r in self.records],
            "notes": list(self.notes),
            "summary": self.summary,
        }

    def _repr_html_(self) -> str:
        esc = html.escape
        head = f"<p><b>Leak report</b>: {esc(self.summary)}</p>"
        if not self.records:
            return head
        rows = "".join(
            f"<tr><td>{esc(s.function)}</td><td>{esc(s.file or '?')}</td>"
            f"<td>{esc(','.join(map(str, s.lines)))}</td><td>{esc(', '.join(s.kinds))}</td>"
            f"<td style='text-align:right'>{esc(s.label)}</td><td style='text-align:right'>{esc(format_bytes(s.bytes))}</td>"
            f"<td style='text-align:right'>{s.blocks if s.blocks is not None else '?'}</td></tr>"
            for s in self.top_sites()
        )
        table = ("<table><thead><tr><th>site</th><th>file</th><th>lines</th><th>kinds</th><th>records</th>"
                 f"<th>bytes</th><th>blocks</th></tr></thead><tbody>{rows}</tbody></table>")
        errs = "".join(f"<li>{esc(r.kind)} at {esc(str(r.site))} {esc(r.note)}</li>" for r in self.errors)
        foot = ("<p>Records marked <i>attributed</i> have a trace that ends inside the standard library (the allocator "
                "kept only its innermost frames); they are counted at the program's call site of that library "
                "function, found in this report.</p>" if any(s.attributed for s in self.top_sites()) else "")
        return head + table + foot + (f"<p>Allocator errors:</p><ul>{errs}</ul>" if errs else "")
