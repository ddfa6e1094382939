"""The native engine behind :func:`zcnb.logs.summarize_logs`: the C scanner ``zcnb.logs._scan`` over log files
(short-iso text, raw lines, saved ``journalctl -o json``).

One pass over the file through 8 MiB mmap windows (same line and byte-range rules as
:func:`zcnb.logs.chunks.iter_chunks`), with the GIL released, so byte ranges of a big file run in threads at once. The C
side only counts raw bytes; error groups are turned into tallies here (names are redacted and made canonical
later, in :mod:`zcnb.logs.summary`, for both engines alike), with the very
functions the Python engine uses, so both engines give identical summaries. When the C scanner meets input
whose Python result it cannot reproduce for sure (e.g. a timezone offset of 60 minutes or more) it gives way
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

__all__ = ["MODES", "NATIVE_MODULE", "NativeGaveWay", "native_status", "scan_file_native"]

NATIVE_MODULE = "zcnb.logs._scan"  # built from zcnb/logs/_scan.c by setup.py (optional)
MODES = {"short-iso": "iso", "raw": "raw", "short": "short", "json": "json", "export": "export"}  # format -> C mode


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
    mode = MODES[cfg.fmt]
    sc = importlib.import_module(NATIVE_MODULE).Scanner(mode=mode, ident=cfg.ident, unit=cfg.unit, width=cfg.width)
    try:
        ok = sc.scan_file(path, start, end)  # mmap windows, GIL released: ranges run in parallel threads
    except OSError as exc:
        raise LogFormatError(f"cannot read log file {path}: {exc.strerror}", hint="check the file and its permissions",
                             path=path) from None
    if not ok:
        raise NativeGaveWay(sc.reason)
    res: dict[str, Any] = sc.result()
    return res


def _try_range(path: str, start: int, end: int, cfg: ScanConfig) -> dict[str, Any] | NativeGaveWay:
    try:
        return _scan_range(path, start, end, cfg)
    except NativeGaveWay as exc:
        return exc


def scan_file_native(path: str, size: int, cfg: ScanConfig, *, threads: int,
                     meanwhile: Callable[[], object] | None = None) -> Acc:
    """Scan a log file with the C scanner in ``threads`` byte ranges (threads without the GIL, so ``meanwhile``,
    if given, runs in this thread at the same time); raises :class:`NativeGaveWay`."""
    if cfg.unit is not None and "\ufffd" in cfg.unit.decode("utf-8", "replace"):
        raise NativeGaveWay("a unit name that is not valid UTF-8")
    n = max(1, threads)
    bounds = [size * i // n for i in range(n + 1)]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="zcnb-scan") as pool:
        futures = [pool.submit(_try_range, path, a, z, cfg) for a, z in zip(bounds[:-1], bounds[1:])]
        if meanwhile is not None:
            meanwhile()
        tries = [f.result() for f in futures]
    parts: list[dict[str, Any]] = []
    for k, got in enumerate(tries):  # an export range starts after an empty line, which binary data can also hold:
        if isinstance(got, NativeGaveWay) and k == 0:  # it must start where the previous one stopped, else it
            raise got  # is read again from there (so its own result, even a give-way, is void)
        if isinstance(got, NativeGaveWay) or (k and got["range"][0] != parts[-1]["range"][1]):
            got = _scan_range(path, parts[-1]["range"][1], bounds[k + 1], cfg)
        parts.append(got)
    acc = Acc()
    for part in parts:  # in file order: pid changes, line numbers and first-seen examples depend on it
        acc.merge(to_acc(part))
    return acc


def _column_key(cat: str, raw: bytes) -> tuple[str, ...]:
    """The activity key of a C column: ``("skill", name, form)`` or ``(activity,)`` as in ``Acc.buckets``."""
    if cat == "T":  # skill:NAME token (ASCII by construction)
        return ("skill", raw.decode("ascii"), "token")
    if cat == "S":  # [agent] tool skill args={"name": ...}
        return ("skill", raw.decode("utf-8", "replace"), "tool")
    name = raw.decode("utf-8", "replace")
    if cat == "O":
        return (f"tool:{name}",)
    if cat == "L":  # error / warning / unauth lines per bucket
        return (name,)
    return (f"request:{name}",)  # "K" [heartbeat]/[ws] tag, "R" debug request line ([gateway] GET /path)


def to_acc(res: dict[str, Any]) -> Acc:
    """Turn the C scanner's raw tallies into an :class:`Acc`, with the Python engine's naming rules."""
    import numpy as np

    acc = Acc()
    acc.lines = res["lines"]
    acc.unreadable, acc.bad_times, acc.cut_lines = res["unreadable"], res["bad_times"], res["cut_lines"]
    acc.first_ts, acc.last_ts = res["first"], res["last"]
    acc.pids = [(ts, pid, seq, prev) for ts, pid, seq, prev, _back in res["pids"]]
    acc.pid_seen = {pid for _ts, pid, _seq, _prev, _back in res["pids"]}
    acc.pid_back = {pid: back for _ts, pid, _seq, _prev, back in res["pids"] if back >= 0}
    acc.cur_pid, acc.pids_capped = res["last_pid"], bool(res["pids_capped"])
    acc.banners = [(ts, seq) for ts, seq in res["banners"]]
    acc.banners_over = res["banners_over"]
    keys: list[tuple[str, ...]] = []
    for cat, raw, total in res["columns"]:
        key = _column_key(cat, raw) if cat != "P" else ("priority",)
        keys.append(key)
        if not total:  # the fixed columns exist from the start
            continue
        if cat == "T":
            acc.skills_token[key[1]] += total
        elif cat == "S":
            acc.skills_tool[key[1]] += total
            acc.tools["skill"] += total
        elif cat == "O":
            acc.tools[key[0][5:]] += total
        elif cat in "KR":
            acc.requests[key[0][8:]] += total
        elif cat == "P":
            acc.priorities[int(raw)] += total
    if res["bucket_n"]:
        acc.bucket_arrays.append((np.frombuffer(res["bucket_b"], dtype=np.int64),
                                  np.frombuffer(res["bucket_c"], dtype=np.int32),
                                  np.frombuffer(res["bucket_n"], dtype=np.int64), keys))
    for level, n in (("debug", res["debug"]), ("info", res["info"])):
        if n:
            acc.levels[level] += n
    for word, n in zip(("alloc", "free", "deinit"), res["alloc"]):
        if n:
            acc.alloc_mentions[word] += n
    for kind, level, n, scope, norm, flags, example, first, last, seq in res["groups"]:
        add_level_group(acc, (level, scope, norm, flags, kind), n, None, first, last, example, seq)
    for level, scope, flags, n in res["other"]:  # lines of shapes beyond MAX_GROUPS
        add_level_group(acc, (level.encode(), (b"", b"gpa", b"DebugAllocator")[scope], b"", flags, "o"), n, None,
                        None, None, b"", 0, other=True)
    acc.crashes = [(ts, pid, seq, msg.decode("utf-8", "replace")) for ts, pid, seq, msg in res["crashes"]]
    acc.crashes_over = res["crashes_over"]
    return acc
