"""Parse valgrind massif output (``massif.out.<pid>``) without ms_print.

Snapshots give the memory curve (``mem_heap_B`` + extra + stacks); detailed/peak snapshots
carry the allocation tree. Each tree is attributed to sites: the first frame in the user's
code on the path from the allocation root (see :func:`zcnb.leaks.model.is_runtime_frame`).
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from dataclasses import dataclass
from typing import Any

from ..exceptions import LeakReportError
from ..files import read_input
from ..units import format_bytes
from .model import Frame, is_runtime_frame

__all__ = ["MassifReport", "MassifSite", "MassifSnapshot", "parse_massif", "parse_massif_file"]

_NODE = re.compile(r"^( *)n(\d+): (\d+) (.*)$")
_FRAME = re.compile(r"^(0x[0-9A-Fa-f]+): (.*?)(?: \((.*)\))?$")
_BELOW = "(below massif's threshold)"


@dataclass(frozen=True)
class MassifSnapshot:
    index: int
    time: int
    heap_bytes: int
    extra_bytes: int
    stacks_bytes: int
    tree: str  # "empty" | "detailed" | "peak"

    @property
    def total_bytes(self) -> int:
        return self.heap_bytes + self.extra_bytes + self.stacks_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "total_bytes": self.total_bytes}


@dataclass(frozen=True)
class MassifSite:
    """Bytes at one allocation site: at the peak, or first vs last detailed snapshot."""

    function: str
    file: str | None
    line: int | None
    bytes: int
    first_bytes: int = 0
    growth_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _frame(text: str) -> Frame:
    m = _FRAME.match(text)
    if not m:  # root "(page allocation syscalls) ..." or "in N places, below threshold"
        return Frame(function=text)
    where = m.group(3) or ""
    if where.startswith("in "):
        return Frame(function=m.group(2), address=m.group(1), object=where[3:])
    file, _, line = where.rpartition(":")
    if file and line.isdigit():
        return Frame(function=m.group(2), file=file, line=int(line), address=m.group(1))
    return Frame(function=m.group(2), address=m.group(1))


def _sites(tree: list[tuple[int, int, str]]) -> dict[tuple[str, str | None, int | None], int]:
    """Attribute a tree (depth, bytes, text) to user sites; the sums equal the root's bytes."""
    out: dict[tuple[str, str | None, int | None], int] = {}
    skip_below: int | None = None  # depth of a node already attributed: its subtree is counted
    for depth, nbytes, text in tree:
        if skip_below is not None:
            if depth > skip_below:
                continue
            skip_below = None
        if depth == 0:
            continue
        f = _frame(text)
        if "below massif's threshold" in text:
            key: tuple[str, str | None, int | None] = (_BELOW, None, None)
        elif not is_runtime_frame(f):
            key = (f.function or "???", f.file, f.line)
        else:
            continue  # runtime frame: look further down (towards the callers)
        out[key] = out.get(key, 0) + nbytes
        skip_below = depth
    rest = (tree[0][1] if tree and tree[0][0] == 0 else 0) - sum(out.values())
    if rest > 0:  # stacks with only runtime frames (ld.so mapping libraries, libc internals)
        out[("(runtime)", None, None)] = rest
    return out


@dataclass(frozen=True)
class MassifReport:
    """Peak, growth and top sites of one massif run."""

    cmd: str
    time_unit: str
    snapshots: tuple[MassifSnapshot, ...]
    peak_sites: tuple[MassifSite, ...]
    growth_sites: tuple[MassifSite, ...]
    peak_snapshot: int | None
    first_detailed: int | None
    last_detailed: int | None
    notes: tuple[str, ...] = ()

    @property
    def peak_bytes(self) -> int:
        return max((s.total_bytes for s in self.snapshots), default=0)

    @property
    def peak_time(self) -> int | None:
        best = max(self.snapshots, key=lambda s: s.total_bytes, default=None)
        return best.time if best else None

    @property
    def start_bytes(self) -> int:
        return self.snapshots[0].total_bytes if self.snapshots else 0

    @property
    def end_bytes(self) -> int:
        return self.snapshots[-1].total_bytes if self.snapshots else 0

    @property
    def growth_bytes(self) -> int:
        return self.end_bytes - self.start_bytes

    @property
    def summary(self) -> str:
        text = (f"massif: peak {format_bytes(self.peak_bytes, unit='MiB')} at t={self.peak_time} {self.time_unit}, "
                f"growth {format_bytes(self.growth_bytes, unit='MiB', signed=True)} over {len(self.snapshots)} snapshots")
        if self.growth_sites:
            g = self.growth_sites[0]
            text += f"; top growth {g.function} ({g.file or '?'}:{g.line or '?'}) {format_bytes(g.growth_bytes, unit='MiB', digits=2, signed=True)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "cmd": self.cmd, "time_unit": self.time_unit, "peak_bytes": self.peak_bytes, "peak_time": self.peak_time,
            "start_bytes": self.start_bytes, "end_bytes": self.end_bytes, "growth_bytes": self.growth_bytes,
            "peak_snapshot": self.peak_snapshot, "first_detailed": self.first_detailed,
            "last_detailed": self.last_detailed, "peak_sites": [s.to_dict() for s in self.peak_sites],
            "growth_sites": [s.to_dict() for s in self.growth_sites],
            "snapshots": [s.to_dict() for s in self.snapshots], "notes": list(self.notes), "summary": self.summary,
        }

    def _repr_html_(self) -> str:
        esc = html.escape

        def rows(sites: tuple[MassifSite, ...], col: str) -> str:
            return "".join(
                f"<tr><td>{esc(s.function)}</td><td>{esc(s.file or '?')}:{s.line or '?'}</td>"
                f"<td style='text-align:right'>{getattr(s, col):,}</td></tr>" for s in sites[:10])

        return (f"<p><b>Massif</b>: {esc(self.summary)}</p>"
                f"<table><thead><tr><th>site</th><th>where</th><th>bytes at peak</th></tr></thead>"
                f"<tbody>{rows(self.peak_sites, 'bytes')}</tbody></table>"
                f"<table><thead><tr><th>site</th><th>where</th><th>growth (bytes)</th></tr></thead>"
                f"<tbody>{rows(self.growth_sites, 'growth_bytes')}</tbody></table>")


def _read(text: str) -> tuple[dict[str, str], list[MassifSnapshot], dict[int, list[tuple[int, int, str]]]]:
    header: dict[str, str] = {}
    snaps: list[MassifSnapshot] = []
    trees: dict[int, list[tuple[int, int, str]]] = {}
    cur: dict[str, str] = {}

    def flush() -> None:
        if "snapshot" in cur:
            try:
                snaps.append(MassifSnapshot(index=int(cur["snapshot"]), time=int(cur.get("time", "0")),
                                            heap_bytes=int(cur.get("mem_heap_B", "0")),
                                            extra_bytes=int(cur.get("mem_heap_extra_B", "0")),
                                            stacks_bytes=int(cur.get("mem_stacks_B", "0")),
                                            tree=cur.get("heap_tree", "empty")))
            except ValueError:
                pass  # a snapshot cut in the middle of a number: drop it, keep the rest
        cur.clear()

    for line in text.splitlines():
        m = _NODE.match(line)
        if m and "snapshot" in cur:
            trees.setdefault(int(cur["snapshot"]) if cur["snapshot"].isdigit() else -1, []).append(
                (len(m.group(1)), int(m.group(3)), m.group(4)))
            continue
        if line.startswith("#"):
            continue
        key, sep, value = line.partition("=") if "=" in line.split(":", 1)[0] else line.partition(": ")
        if not sep:
            continue
        if key == "snapshot":
            flush()
        if key in ("snapshot", "time", "mem_heap_B", "mem_heap_extra_B", "mem_stacks_B", "heap_tree"):
            cur[key] = value.strip()
        elif not snaps and "snapshot" not in cur:
            header[key.strip()] = value.strip()
    flush()
    return header, snaps, trees


def parse_massif(text: str | bytes) -> MassifReport:
    """Parse massif output text; raise :class:`LeakReportError` when it holds no snapshot."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise LeakReportError(f"cannot read massif output from {type(text).__name__}", hint="pass str or bytes")
    header, snaps, trees = _read(text)
    if not snaps:
        raise LeakReportError("no massif snapshot found in the text",
                              hint="pass the file named by --massif-out-file (massif.out.<pid>), not valgrind's log")
    notes: list[str] = []
    detailed = [s for s in snaps if s.tree in ("detailed", "peak") and trees.get(s.index)]
    peak_total = max(s.total_bytes for s in snaps)
    peak_snap = next((s for s in detailed if s.tree == "peak"), None)
    best = max(detailed, key=lambda s: s.total_bytes, default=None)
    if best is not None and (peak_snap is None or best.total_bytes > peak_snap.total_bytes):
        if peak_snap is not None:
            notes.append(f"massif's peak tree (snapshot {peak_snap.index}) is older than the largest detailed "
                         f"snapshot ({best.index}); sites at peak use the latter")
        peak_snap = best
    if peak_snap is not None and peak_snap.total_bytes < peak_total:
        notes.append(f"no detailed tree at the true peak ({peak_total} B): sites use snapshot {peak_snap.index}")
    peak_sites: tuple[MassifSite, ...] = ()
    if peak_snap is not None:
        at = _sites(trees[peak_snap.index])
        peak_sites = tuple(sorted((MassifSite(function=k[0], file=k[1], line=k[2], bytes=v) for k, v in at.items()),
                                  key=lambda s: -s.bytes))
    growth_sites: tuple[MassifSite, ...] = ()
    if len(detailed) >= 2:
        first, last = _sites(trees[detailed[0].index]), _sites(trees[detailed[-1].index])
        growth_sites = tuple(sorted(
            (MassifSite(function=k[0], file=k[1], line=k[2], bytes=last.get(k, 0), first_bytes=first.get(k, 0),
                        growth_bytes=last.get(k, 0) - first.get(k, 0)) for k in set(first) | set(last)),
            key=lambda s: -s.growth_bytes))
    else:
        notes.append("fewer than two detailed snapshots: no growth by site (run longer or use --detailed-freq=1)")
    return MassifReport(cmd=header.get("cmd", ""), time_unit=header.get("time_unit", "i"), snapshots=tuple(snaps),
                        peak_sites=peak_sites, growth_sites=growth_sites,
                        peak_snapshot=peak_snap.index if peak_snap else None,
                        first_detailed=detailed[0].index if detailed else None,
                        last_detailed=detailed[-1].index if detailed else None, notes=tuple(notes))


def parse_massif_file(path: str | os.PathLike[str]) -> MassifReport:
    """Read and parse a massif output file."""
    return parse_massif(read_input(path, what="massif output", error=LeakReportError, hint="check --massif-out-file"))
