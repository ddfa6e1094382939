"""Memory that the simulated gateway really retains, and its Zig-style exit report.

Stdlib only: this runs inside the server process, which must start fast.
Leaked blocks are heap ``bytearray``s that are never freed (so RSS really grows);
transient sawtooth blocks are anonymous ``mmap``s, because closing an mmap returns
its pages to the kernel at once, whereas glibc may keep freed heap memory.
"""

from __future__ import annotations

import mmap
import random
from dataclasses import dataclass

__all__ = ["LEAK_KINDS", "LEAK_MODES", "LeakEngine", "LeakParams"]

LEAK_MODES = ("none", "linear", "per_request", "sawtooth-rising", "sawtooth-flat", "warmup-plateau")
LEAK_KINDS = ("unauth", "agent", "heartbeat", "ws", "health", "metrics")
PAGE = 4096
_REPORT_RECORDS = 20
_BIN = "zeptoclaw-gateway"
_SRC = "/home/user/zeptoclaw/src"
_STD = "/usr/lib/zig/std"

# (file, line, col, function, source line) frames, innermost first, per leak site.
_SITES: dict[str, tuple[tuple[str, int, int, str, str], ...]] = {
    "unauth": (
        (f"{_SRC}/gateway/http.zig", 212, 31, "handleRequest",
         "    const headers = try parseHeaders(self.allocator, raw);"),
        (f"{_SRC}/gateway/server.zig", 88, 27, "serveConnection", "        try handleRequest(self, conn);"),
    ),
    "agent": (
        (f"{_SRC}/config.zig", 57, 46, "loadConfig",
         "    const parsed = try std.json.parseFromSlice(Config, allocator, bytes, .{});"),
        (f"{_SRC}/gateway/agent.zig", 131, 34, "handleAgent", "    const cfg = try config.loadConfig(alloc);"),
        (f"{_SRC}/gateway/http.zig", 247, 28, "handleRequest", "        .agent => try handleAgent(self, req),"),
    ),
    "heartbeat": (
        (f"{_SRC}/config.zig", 57, 46, "loadConfig",
         "    const parsed = try std.json.parseFromSlice(Config, allocator, bytes, .{});"),
        (f"{_SRC}/gateway/heartbeat.zig", 44, 34, "handleHeartbeat", "    const cfg = try config.loadConfig(alloc);"),
    ),
    "ws": (
        (f"{_SRC}/gateway/ws.zig", 98, 40, "upgrade", "    const client = try self.allocator.create(WsClient);"),
        (f"{_SRC}/gateway/http.zig", 263, 31, "handleRequest", "        .ws => try ws.upgrade(self, req, conn),"),
    ),
    "health": (
        (f"{_SRC}/gateway/http.zig", 301, 44, "handleHealth",
         "    const body = try std.json.stringifyAlloc(alloc, status, .{});"),
    ),
    "metrics": (
        (f"{_SRC}/gateway/metrics.zig", 39, 38, "render", "    const text = try std.fmt.allocPrint(alloc, FMT, .{"),
    ),
    "timer": (
        (f"{_SRC}/memory/journal.zig", 140, 41, "append", "    const entry = try self.allocator.dupe(u8, line);"),
        (f"{_SRC}/cron.zig", 77, 26, "tick", "        try journal.append(msg);"),
    ),
}
_START = (
    (f"{_STD}/start.zig", 524, 37, "posixCallMainAndExit", "            const result = root.main() catch |err| {"),
    (f"{_STD}/start.zig", 266, 5, "_start", "    asm volatile (switch (native_arch) {"),
)


@dataclass(frozen=True)
class LeakParams:
    """What leaks and how fast (sizes in bytes, times in seconds)."""

    mode: str = "none"
    kind: str | None = None
    bytes_per_event: int = 64 * 1024
    rate_bps: float = 128 * 1024
    period_s: float = 10.0
    transient_bytes: int = 8 * 1024 * 1024
    warmup_s: float = 20.0


def _touch(n: int) -> bytearray:
    block = bytearray(n)
    block[::PAGE] = b"\x01" * len(range(0, n, PAGE))  # write every page so it is resident
    return block


class LeakEngine:
    """Allocates (and for sawtooth modes frees) memory as the leak mode says."""

    def __init__(self, params: LeakParams, *, now: float, seed: int = 0) -> None:
        self.params = params
        self._retained: list[bytearray] = []  # leaked: never freed
        self._cache: list[bytearray] = []  # warm-up cache: kept, freed at exit, not a leak
        self._transient: list[mmap.mmap] = []
        self._transient_bytes = 0
        self._start = now
        self._last = now
        self._due = 0.0
        self._cycle = 0
        self._rng = random.Random(seed)
        self._next_addr = 0x7F0000000000 + (self._rng.randrange(1 << 28) << 12)
        self.leaked_bytes = 0
        self.leaked_allocations = 0
        self.cache_bytes = 0
        self.by_site: dict[str, list[int]] = {}  # site -> [allocations, bytes]
        self._first: list[tuple[int, int, str]] = []  # (address, size, site) of the first records

    def _leak(self, size: int, site: str) -> None:
        if size <= 0:
            return
        self._retained.append(_touch(size))
        self.leaked_bytes += size
        self.leaked_allocations += 1
        counts = self.by_site.setdefault(site, [0, 0])
        counts[0] += 1
        counts[1] += size
        if len(self._first) < _REPORT_RECORDS:
            self._first.append((self._next_addr, size, site))
        self._next_addr += (size + 15) // 16 * 16 + 16

    def on_event(self, kind: str) -> None:
        """A request of ``kind`` arrived (``unauth`` for one without a valid token)."""
        p = self.params
        if p.mode == "per_request" and kind == p.kind:
            self._leak(p.bytes_per_event, kind)

    def tick(self, now: float) -> None:
        """Advance the time-driven modes to ``now`` (monotonic seconds)."""
        p = self.params
        dt = max(0.0, now - self._last)
        self._last = now
        if p.mode in ("linear", "sawtooth-rising"):
            self._due += p.rate_bps * dt
            if self._due >= PAGE:
                size = int(self._due)
                self._due -= size
                self._leak(size, "timer")
        if p.mode == "warmup-plateau" and now - self._start <= p.warmup_s:
            size = int(p.rate_bps * dt)
            if size:
                self._cache.append(_touch(size))
                self.cache_bytes += size
        if p.mode in ("sawtooth-rising", "sawtooth-flat"):
            self._sawtooth(now)

    def _sawtooth(self, now: float) -> None:
        p = self.params
        elapsed = now - self._start
        cycle = int(elapsed // p.period_s)
        if cycle != self._cycle:
            for m in self._transient:  # the "GC": give every transient page back
                m.close()
            self._transient.clear()
            self._transient_bytes = 0
            self._cycle = cycle
        target = int(p.transient_bytes * ((elapsed % p.period_s) / p.period_s))
        grow = (target - self._transient_bytes) // PAGE * PAGE
        if grow > 0:
            m = mmap.mmap(-1, grow)
            for off in range(0, grow, PAGE):
                m[off] = 1
            self._transient.append(m)
            self._transient_bytes += grow

    def summary(self) -> dict[str, object]:
        """JSON-safe ground truth about the leak."""
        p = self.params
        return {
            "mode": p.mode,
            "kind": p.kind,
            "bytes_per_event": p.bytes_per_event if p.mode == "per_request" else None,
            "rate_bytes_per_s": p.rate_bps if p.mode in ("linear", "sawtooth-rising", "warmup-plateau") else None,
            "leaked_bytes_total": self.leaked_bytes,
            "leaked_allocations": self.leaked_allocations,
            "leaked_by_site": {k: {"allocations": v[0], "bytes": v[1]} for k, v in sorted(self.by_site.items())},
            "cache_bytes": self.cache_bytes,
            "transient_bytes": self._transient_bytes,
        }

    def report_lines(self, *, scope: str = "gpa") -> list[str]:
        """Zig debug-allocator leak records (at most 20, then a summary line)."""
        lines: list[str] = []
        for addr, _size, site in self._first:
            lines.append(f"error({scope}): memory address 0x{addr:x} leaked:")
            for path, ln, _col, fn, src in _SITES[site] + _START:
                # Zig points the caret at the call; derive the column from the source so both agree.
                col = src.find("(") + 1 if "(" in src else len(src) - len(src.lstrip()) + 1
                pc = 0x1000000 + ((ln * 7919 + col * 131 + len(fn) * 17) & 0xFFFFF)
                lines.append(f"{path}:{ln}:{col}: 0x{pc:x} in {fn} ({_BIN})")
                lines.append(src)
                lines.append(" " * (col - 1) + "^")
            lines.append("")
        hidden = self.leaked_allocations - len(self._first)
        if hidden > 0:
            lines.append(f"error({scope}): {hidden} more leaked allocations not shown "
                         f"({self.leaked_allocations} allocations, {self.leaked_bytes} bytes leaked in total)")
        return lines
