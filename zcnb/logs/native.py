"""The native engine behind :func:`zcnb.logs.summarize_logs`: the C scanner ``zcnb.logs._scan`` over text logs.

One pass over the file through 32 MiB mmap windows (same line and byte-range rules as
:func:`zcnb.logs.chunks.iter_chunks`), with the GIL released, so byte ranges of a big file run in threads at once. The C
side only counts raw bytes; names are normalised, messages redacted and errors grouped here, with the very
functions the Python engine uses, so both engines give identical summaries. When the C scanner meets input
whose Python result it cannot reproduce for sure (e.g. a timestamp with 7+ fraction digits) it gives way
and the caller runs the Python engine instead, saying so in the summary's notes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..exceptions import LogFormatError
from .chunks import ScanConfig
from .scan import Acc, add_level_group
from .skills import canonical_skill

__all__ = ["NATIVE_MODULE", "NativeGaveWay", "native_status", "scan_file_native"]

NATIVE_MODULE = "zcnb.logs._scan"  # built from zcnb/logs/_scan.c by setup.py (optional)


class NativeGaveWay(Exception):
    """The C scanner met input only the Python engine can judge (internal: the caller falls back)."""


def native_status() -> tuple[bool, str]:
    """``(True, "")`` when ``zcnb.logs._scan`` is importable, else ``(False, why)``."""
    try:
        importlib.import_module(NATIVE_MODULE)
    except ImportError as exc:  # not built (no compiler at install time) or built for another Python
        return False, f"{exc}; rebuild with `python -m pip install -e .`"
    return True, ""


def _scan_range(path: str, start: int, end: int, cfg: ScanConfig) -> dict[str, Any]:
    sc = importlib.import_module(NATIVE_MODULE).Scanner(iso=cfg.fmt == "short-iso", ident=cfg.ident, width=cfg.width)
    try:
        ok = sc.scan_file(path, start, end)  # mmap windows, GIL released: ranges run in parallel threads
    except OSError as exc:
        raise LogFormatError(f"cannot read log file {path}: {exc.strerror}", hint="check the file and its permissions",
                             path=path) from None
    if not ok:
        raise NativeGaveWay(sc.reason)
    res: dict[str, Any] = sc.result()
    return res


def scan_file_native(path: str, size: int, cfg: ScanConfig, *, threads: int) -> Acc:
    """Scan a text log with the C scanner in ``threads`` byte ranges; raises :class:`NativeGaveWay`."""
    n = max(1, threads)
    bounds = [size * i // n for i in range(n + 1)]
    if n == 1:
        parts = [_scan_range(path, 0, size, cfg)]
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="zcnb-scan") as pool:
            parts = list(pool.map(_scan_range, [path] * n, bounds[:-1], bounds[1:], [cfg] * n))
    acc = Acc()
    for part in parts:  # in file order: pid changes and first-seen examples depend on it
        acc.merge(to_acc(part, cfg.redact))
    return acc


def to_acc(res: dict[str, Any], redact: Callable[[str], str]) -> Acc:
    """Turn the C scanner's raw tallies into an :class:`Acc`, with the Python engine's naming rules."""
    acc = Acc()
    acc.lines = res["lines"]
    acc.first_ts, acc.last_ts = res["first"], res["last"]
    acc.pids = [(ts, pid) for ts, pid in res["pids"]]
    acc.banners = list(res["banners"])
    names: dict[tuple[str, bytes], str] = {}  # the same few names come back once per bucket: convert each once
    tok, tool_skill, tools, reqs = acc.skills_token, acc.skills_tool, acc.tools, acc.requests
    forms, buckets = acc.bucket_skill_forms, acc.buckets
    for cat, b, raw, n in res["counts"]:
        name = names.get((cat, raw))
        if name is None:
            if cat == "T":  # skill:NAME token (ASCII by construction)
                name = canonical_skill(raw.decode("ascii"))
            elif cat == "S":  # [agent] tool skill args={"name": ...}
                name = canonical_skill(raw.decode("utf-8", "replace"))
            else:  # "O" tool name, "K" [heartbeat]/[ws] tag, "R" debug request line ([gateway] GET /path)
                name = raw.decode("utf-8", "replace")
            names[(cat, raw)] = name
        if cat == "T":
            tok[name] += n
            if b is not None:
                forms[(b, name, "token")] += n
        elif cat == "S":
            tool_skill[name] += n
            tools["skill"] += n
            if b is not None:
                forms[(b, name, "tool")] += n
        elif cat == "O":
            tools[name] += n
            if b is not None:
                buckets[(b, f"tool:{name}")] += n
        else:
            reqs[name] += n
            if b is not None:
                buckets[(b, f"request:{name}")] += n
    if res["debug"]:
        acc.levels["debug"] += res["debug"]
    for word, n in zip(("alloc", "free", "deinit"), res["alloc"]):
        if n:
            acc.alloc_mentions[word] += n
    cleaned: dict[str, str] = {}  # one message shape recurs in every bucket: redact each text once

    def red(text: str) -> str:
        out = cleaned.get(text)
        if out is None:
            out = cleaned[text] = redact(text)
        return out

    for b, level, n, scope, example, first, last in res["groups"]:
        add_level_group(acc, level, scope.decode("utf-8", "replace"), example, n, b, first, last, red)
    return acc
