"""The samples CSV: row formatting for the sampler and :func:`read_samples`.

See docs/CONTRACTS.md "Samples". ``read_samples`` also reads any CSV with
``timestamp`` and ``rss_bytes`` columns and the runbook loop's ``<iso-ts>,<rss KiB>``.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, OutputWriteError, SamplesFormatError
from ..files import open_input, read_input
from ..locks import lock_open_file
from ..units import BYTES_MAX, EPOCH_MAX, EPOCH_MIN, epoch_seconds, format_bytes, time_range_text
from .memlimit import limit_from_header

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "FLOAT_COLUMNS", "Sample", "SamplesFile", "read_samples"]

FLOAT_COLUMNS = ("rss_bytes", "vms_bytes", "uss_bytes", "pss_bytes", "cgroup_bytes", "metrics_rss_bytes",
                 "metrics_vms_bytes")
COLUMNS = ("timestamp", "pid", "source", *FLOAT_COLUMNS, "event", "note")
_RUNBOOK_LINE = re.compile(r"^\s*(\d{4}-\d\d-\d\d[T ][0-9:.,]+(?:Z|[+-]\d\d:?\d\d)?)\s*,\s*(\S*)\s*$")
_MAX_BAD_LINES_SHOWN = 3


@dataclass(frozen=True)
class Sample:
    """One CSV row: a measurement (event "", start, restart) or an event (gap, stop)."""

    timestamp: datetime
    pid: int | None = None
    source: str = ""
    rss_bytes: int | None = None
    vms_bytes: int | None = None
    uss_bytes: int | None = None
    pss_bytes: int | None = None
    cgroup_bytes: int | None = None
    metrics_rss_bytes: int | None = None
    metrics_vms_bytes: int | None = None
    event: str = ""
    note: str = ""

    def csv_line(self) -> str:
        cells = [self.timestamp.isoformat(timespec="milliseconds"), "" if self.pid is None else str(self.pid),
                 self.source]
        cells += ["" if (v := getattr(self, c)) is None else str(int(v)) for c in FLOAT_COLUMNS]
        cells += [self.event, self.note]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        d = {c: getattr(self, c) for c in COLUMNS}
        d["timestamp"] = self.timestamp.isoformat()
        return d

    def _repr_markdown_(self) -> str:
        what = self.event or "sample"
        rss = format_bytes(self.rss_bytes, unit="MiB")
        return f"{what} at {self.timestamp.isoformat()} pid {self.pid}: RSS {rss} ({self.source}) {self.note}"


def _bad(path: Path, msg: str, hint: str) -> SamplesFormatError:
    return SamplesFormatError(f"{path}: {msg}", hint=hint, path=str(path))


def _split(path: Path) -> tuple[list[str], list[tuple[int, str]], list[str]]:
    """(header comments, numbered data lines, notes); drops a truncated last line."""
    raw = read_input(path, what="samples file", error=SamplesFormatError,
                     hint="check the path (zcnb sample --out writes it)")
    notes: list[str] = []
    text = raw.replace(b"\x00", b"").decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines and lines[-1].strip():
        notes.append(f"dropped a truncated last line (writer interrupted): {lines[-1][:60]!r}")
        lines.pop()
    comments = [ln for ln in lines if ln.startswith("#")]
    data = [(i + 1, ln.rstrip("\r")) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
    return comments, data, notes


def _runbook_rows(path: Path, data: list[tuple[int, str]], notes: list[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    extra = 0
    for lineno, line in data:
        m = _RUNBOOK_LINE.match(line)
        if m is None:
            if line.strip().isdigit() and rows:
                extra += 1  # `ps -p $(pgrep ...)` printed one line per matching process
                continue
            raise _bad(path, f"line {lineno} is neither zcnb CSV nor the runbook's '<iso-ts>,<rss KiB>': {line[:80]!r}",
                       "give a file written by zcnb sample or by the runbook's loop")
        ts, kib = m.group(1), m.group(2)
        if kib == "":
            rows.append({"timestamp": ts, "source": "", "event": "gap", "note": "no rss (process not found by the loop)"})
            continue
        if not kib.isdigit():
            raise _bad(path, f"line {lineno}: RSS {kib!r} is not a whole number of KiB", "fix or remove that line")
        rows.append({"timestamp": ts, "source": "ps", "rss_bytes": str(int(kib) * 1024)})
    if extra:
        notes.append(f"{extra} extra RSS line(s) from several matching processes ignored: first process kept")
    return rows


def _csv_rows(path: Path, data: list[tuple[int, str]]) -> list[dict[str, str]]:
    reader = csv.reader([ln for _, ln in data])
    try:
        header = [h.strip() for h in next(reader)]
        body = list(reader)
    except csv.Error as exc:
        raise _bad(path, f"not valid CSV ({exc})", "give a samples CSV") from None
    if "timestamp" not in header or not ({"rss_bytes", *FLOAT_COLUMNS} & set(header)):
        raise _bad(path, f"header {','.join(header)[:120]!r} lacks 'timestamp' and a memory column such as 'rss_bytes'",
                   "give a zcnb samples CSV, a CSV with timestamp,rss_bytes, or the runbook's loop output")
    rows = []
    for (lineno, _), cells in zip(data[1:], body):
        if len(cells) > len(header):
            raise _bad(path, f"line {lineno} has {len(cells)} cells for {len(header)} columns", "fix or remove that line")
        rows.append({h: c.strip() for h, c in zip(header, cells)} | {"_line": str(lineno)})
    return rows


def parse_times(p: Path, raw: pd.Series) -> pd.Series:
    """ISO 8601 texts -> UTC times (NaT where unreadable); :class:`SamplesFormatError` for times outside
    1970..2200 (year 9999, year 0, negative years), which are a broken clock, not samples."""
    import pandas as pd

    years = pd.to_numeric(raw.str.extract(r"^\s*([+-]?\d{4,})-", expand=False), errors="coerce")
    outside = (years < 1970) | (years >= 2200)
    if not outside.any():
        try:
            ts = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
        except (ValueError, OverflowError, NotImplementedError, pd.errors.OutOfBoundsDatetime) as exc:
            raise _bad(p, f"timestamps cannot be read ({type(exc).__name__})", time_range_text()) from None
        epoch = epoch_seconds(ts)
        outside = ts.notna() & ~((epoch >= EPOCH_MIN) & (epoch < EPOCH_MAX))
        if not outside.any():
            return ts
    bad = raw[outside].head(_MAX_BAD_LINES_SHOWN).tolist()
    raise _bad(p, f"{int(outside.sum())} timestamp(s) are out of range, e.g. {bad}",
               time_range_text() + "; fix or remove those rows")


def check_byte_counts(p: Path, col: str, raw: pd.Series, vals: pd.Series) -> None:
    """Memory cells above 8 PiB (1e300...) are corrupt, not readings: refused, never analysed as a leak."""
    huge = vals > BYTES_MAX
    if huge.any():
        raise _bad(p, f"column {col} has {int(huge.sum())} value(s) above 8 PiB, e.g. "
                      f"{raw[huge].head(_MAX_BAD_LINES_SHOWN).tolist()}: not a memory size",
                   "memory cells are byte counts (a real reading is far below 8 PiB); fix or remove those rows")


_SLOW_PATH_MAX_BYTES = 64 << 20  # the row-by-row reader (exact messages for malformed files) only below this
_CHUNK_ROWS = 250_000


ANALYZE_MAX_ROWS = 4_000_000  # zcnb analyze: ~1 GiB peak (measured: bench/analyze_memory.py, docs/analysis.md)


class _DataLines:
    """A binary file-like over a samples CSV that yields only the data lines (comment lines are collected,
    NUL bytes removed, a truncated last line dropped): what pandas' C parser reads, in bounded memory."""

    def __init__(self, fh: Any, first: bytes) -> None:
        self._fh, self._rest, self._pending = fh, b"", first
        self.comments: list[str] = []
        self.truncated = b""
        self.consumed = len(first)

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._pending:
                out, self._pending = self._pending, b""
                return out
            block: bytes = self._fh.read(1 << 20)
            self.consumed += len(block)
            if not block:
                if self._rest.strip():
                    self.truncated = self._rest
                self._rest = b""
                return b""
            block = self._rest + block.replace(b"\x00", b"")
            cut = block.rfind(b"\n") + 1
            self._rest, block = block[cut:], block[:cut]
            if b"\n#" in block or block.startswith(b"#"):
                keep = []
                for line in block.split(b"\n"):
                    if line.startswith(b"#"):
                        self.comments.append(line.decode("utf-8", "replace"))
                    else:
                        keep.append(line)
                block = b"\n".join(keep)
            if block.strip():
                return block


def _categorical(values: list[Any]) -> Any:
    import pandas as pd
    from pandas.api.types import union_categoricals

    return pd.Categorical(union_categoricals(values)) if len(values) > 1 else values[0]


def _too_many(p: Path, rows: int, max_rows: int) -> SamplesFormatError:
    return SamplesFormatError(
        f"{p} holds ~{rows:,} rows: more than the {max_rows:,} that are analysed in bounded memory (~1 GiB)",
        hint="analyse a window: keep the header lines and the newest rows (e.g. `(grep '^#' FILE | head -20; "
             "grep -v '^#' FILE | head -1; tail -n 2000000 FILE) > last.csv`), or sample at a coarser interval",
        path=str(p))


def _read_fast(p: Path, *, compact: bool, max_rows: int | None = None) -> pd.DataFrame | None:
    """Typed, chunked reading of a zcnb samples CSV with bounded memory (~30-80 bytes per row kept).

    None when the file is not a plain zcnb/``timestamp,rss_bytes`` CSV or holds a cell the typed parser
    refuses and the file is small: the row-by-row reader then gives the exact message.
    """
    import numpy as np
    import pandas as pd

    fh = open_input(p, what="samples file", error=SamplesFormatError, hint="check the path (zcnb sample --out writes it)")
    with fh:
        head: list[str] = []
        first = b""
        while True:
            line = fh.readline()
            if not line:
                return None
            if line.startswith(b"#") or not line.replace(b"\x00", b"").strip():
                head.append(line.decode("utf-8", "replace").rstrip("\r\n"))
                continue
            first = line.replace(b"\x00", b"")
            break
        header = [h.strip() for h in first.decode("utf-8", "replace").strip().split(",")]
        if "timestamp" not in header or not set(header) <= set(COLUMNS) or not set(FLOAT_COLUMNS) & set(header):
            return None
        src = _DataLines(fh, first)
        dtypes: dict[str, Any] = {c: "float64" for c in FLOAT_COLUMNS if c in header}
        dtypes.update({c: "str" for c in ("timestamp", "source", "event", "note") if c in header})
        if "pid" in header:
            dtypes["pid"] = "float64"
        parts: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        notes: list[str] = []
        naive = 0
        try:
            reader = pd.read_csv(src, dtype=dtypes, keep_default_na=False,
                                 na_values={c: [""] for c in (*FLOAT_COLUMNS, "pid") if c in header},
                                 chunksize=_CHUNK_ROWS, engine="c", skipinitialspace=True)
            size = p.stat().st_size
            seen = 0
            for chunk in reader:
                if len(chunk.columns) != len(header):
                    return None
                seen += len(chunk)
                if max_rows is not None:  # refuse early: estimate the rows from the bytes read so far
                    estimate = int(seen * size / max(src.consumed, 1))
                    if seen > max_rows or (estimate > 1.05 * max_rows and src.consumed > (8 << 20)):
                        raise _too_many(p, max(estimate, seen), max_rows)
                raw = chunk["timestamp"].astype(str)
                naive += int((~raw.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)).sum())
                ts = parse_times(p, raw)
                if ts.isna().any():
                    return None
                # int64 ns since the epoch (UTC): to_numpy() of tz-aware times would be Timestamp objects
                parts["timestamp"].append(pd.DatetimeIndex(ts).as_unit("ns").asi8)
                for col in FLOAT_COLUMNS:
                    if col in chunk:
                        vals = chunk[col].to_numpy(dtype="float64")
                        if np.isinf(vals).any() or (vals < 0).any() or (vals > BYTES_MAX).any():
                            return None
                        parts[col].append(vals.astype(np.float32) if compact else vals)
                pid = chunk["pid"].to_numpy(dtype="float64") if "pid" in chunk else np.full(len(chunk), np.nan)
                ok = (pid > 0) & (pid < 2**31)  # int32 with 0 = not known: 4 bytes a row until the end
                parts["pid"].append(np.where(ok, np.round(np.where(ok, pid, 0)), 0).astype(np.int32))
                for col in ("source", "event", "note"):
                    text = chunk[col].fillna("").str.strip() if col in chunk else pd.Series("", index=chunk.index)
                    parts[col].append(pd.Categorical(text.astype(str)))
        except (ValueError, TypeError, pd.errors.ParserError, UnicodeDecodeError):
            if p.stat().st_size <= _SLOW_PATH_MAX_BYTES:
                return None
            raise _bad(p, "holds rows the typed reader cannot parse (a cell that is not a number where a byte "
                          "count belongs, or a row with extra cells)",
                       "repair or remove those rows (the file is too large for the row-by-row reader)") from None
    if not sum(len(a) for a in parts["timestamp"]):
        raise _bad(p, "has a header but no sample rows", "sample for longer (zcnb sample --duration ...)")
    if src.truncated:
        notes.append(f"dropped a truncated last line (writer interrupted): {src.truncated[:60].decode('utf-8', 'replace')!r}")
    if naive:
        notes.append(f"{naive} timestamp(s) without a UTC offset were taken as UTC")
    n = sum(len(a) for a in parts["timestamp"])
    stamps = np.concatenate(parts["timestamp"])
    parts["timestamp"] = []
    data: dict[str, Any] = {"timestamp": pd.DatetimeIndex(stamps.view("datetime64[ns]")).tz_localize("UTC")}
    pid32 = np.concatenate(parts["pid"])
    parts["pid"] = []
    data["pid"] = pd.arrays.IntegerArray(pid32.astype(np.int64), pid32 == 0)
    data["source"] = _categorical(parts["source"])
    for col in FLOAT_COLUMNS:
        if parts[col]:
            vals = np.concatenate(parts[col])
            parts[col] = []
            if compact and np.isnan(vals).all():
                continue
            # compact: float32 keeps 24 bits of mantissa, i.e. 1 KiB steps at 16 GiB: far below page and
            # arena jitter, and halves what a huge file costs; the contract's float64 otherwise.
            data[col] = vals
        elif not compact:
            data[col] = np.full(n, np.nan)
    data["event"] = _categorical(parts["event"])
    data["note"] = _categorical(parts["note"])
    if not compact:  # the contract's object columns (8 bytes a row: the strings are shared by the categories)
        for col in ("source", "event", "note"):
            data[col] = np.asarray(data[col], dtype=object)
    out = pd.DataFrame(data, copy=False)
    if not out[[c for c in FLOAT_COLUMNS if c in out.columns]].notna().any(axis=None):
        raise _bad(p, "has rows but not a single memory measurement", "check the sampler's gap notes in the file")
    return _finish(p, out, head + src.comments, notes)


def _finish(p: Path, out: pd.DataFrame, comments: list[str], notes: list[str]) -> pd.DataFrame:
    """Sort, drop duplicate rows, attach the header and notes (both readers)."""
    import pandas as pd

    if not out["timestamp"].is_monotonic_increasing:
        back = int((out["timestamp"].diff() < pd.Timedelta(0)).sum())
        notes.append(f"{back} row(s) were out of time order (clock jump or merged files): sorted by time")
        out = out.sort_values("timestamp", kind="stable")
    same = out["timestamp"].diff().eq(pd.Timedelta(0)).to_numpy()
    if same.any():  # duplicates share a timestamp: only those rows need the full comparison
        cand = same | pd.Series(same).shift(-1, fill_value=False).to_numpy()
        subset = [c for c in ("timestamp", "pid", "source", "event", *FLOAT_COLUMNS) if c in out.columns]
        dup = out[cand].astype({c: "object" for c in ("source", "event") if c in out.columns}) \
            .duplicated(subset=subset, keep="first")
        if dup.any():
            notes.append(f"dropped {int(dup.sum())} duplicate row(s)")
            out = out.drop(index=dup.index[dup.to_numpy()])
    if not isinstance(out.index, pd.RangeIndex) or out.index.start != 0 or out.index.step != 1:
        out = out.reset_index(drop=True)
    order = [c for c in COLUMNS if c in out.columns]
    if list(out.columns) != order:
        out = out[order]
    out.attrs["notes"] = notes
    out.attrs["header"] = _header(comments)
    recorded = limit_from_header(out.attrs["header"])
    if recorded is not None:  # the target's ceiling as the sampler found it (zcnb.collect.memlimit)
        out.attrs["memory_limit"] = {"bytes": recorded.bytes, "source": recorded.source}
    out.attrs["path"] = str(p)
    return out


def read_samples(path: str | os.PathLike[str], *, compact: bool = False,
                 max_rows: int | None = None) -> pd.DataFrame:
    """Read a samples CSV into the contract's DataFrame (``df.attrs['notes']``, ``df.attrs['header']``,
    ``df.attrs['memory_limit']`` when the header records the target's limit).

    zcnb CSVs are parsed typed and in chunks (bounded memory: a week at 1 Hz in well under 300 MiB);
    ``compact=True`` (``zcnb analyze``) leaves out memory columns without a single value, keeps memory as
    float32 and source/event/note as categoricals. ``max_rows``: refuse (SamplesFormatError with a hint)
    a file with more rows, estimated early from the bytes read.
    """
    p = Path(path)
    fast = _read_fast(p, compact=compact, max_rows=max_rows)
    if fast is not None:
        return fast
    return _read_rows(p)


def _read_rows(p: Path) -> pd.DataFrame:
    """The row-by-row reader: the runbook's loop format, and exact messages for malformed files."""
    import numpy as np
    import pandas as pd

    comments, data, notes = _split(p)
    if not data:
        raise _bad(p, "holds no samples", "sample for longer, or check the file is the right one")
    head = data[0][1]
    rows = _runbook_rows(p, data, notes) if _RUNBOOK_LINE.match(head) else _csv_rows(p, data)
    if not rows:
        raise _bad(p, "has a header but no sample rows", "sample for longer (zcnb sample --duration ...)")
    df = pd.DataFrame(rows)
    out = pd.DataFrame(index=df.index)
    ts_raw = df["timestamp"].astype(str)
    naive = ~ts_raw.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    ts = parse_times(p, ts_raw)
    if ts.isna().any():
        bad = ts_raw[ts.isna()].head(_MAX_BAD_LINES_SHOWN).tolist()
        raise _bad(p, f"{int(ts.isna().sum())} timestamp(s) are not ISO 8601, e.g. {bad}",
                   "timestamps look like 2026-11-28T10:00:00+00:00 (date -Iseconds)")
    if naive.any():
        notes.append(f"{int(naive.sum())} timestamp(s) without a UTC offset were taken as UTC")
    out["timestamp"] = ts.astype("datetime64[ns, UTC]")
    pid = pd.to_numeric(df.get("pid", pd.Series("", index=df.index)).replace("", np.nan), errors="coerce")
    # A pid is a positive integer that fits in 32 bits; anything else (inf, -3, 1e300) is "not known".
    pid = pid.where((pid > 0) & (pid < 2**31) & np.isfinite(pid))
    out["pid"] = pid.round().astype("Int64") if pid.notna().any() else pd.array([pd.NA] * len(df), dtype="Int64")
    out["source"] = df.get("source", pd.Series("", index=df.index)).fillna("").astype(str)
    for col in FLOAT_COLUMNS:
        raw = df.get(col, pd.Series("", index=df.index)).fillna("").astype(str).str.strip()
        vals = pd.to_numeric(raw.replace("", np.nan), errors="coerce").astype("float64")
        bad = vals.isna() & (raw != "") & ~raw.str.lower().isin(["nan", "na", "null", "none"])
        if bad.any():
            raise _bad(p, f"column {col} has non-numeric values, e.g. {raw[bad].head(_MAX_BAD_LINES_SHOWN).tolist()}",
                       "memory cells must be whole byte counts (empty = not measured)")
        if np.isinf(vals).any() or (vals < 0).any():
            raise _bad(p, f"column {col} has negative or infinite values", "memory cells must be byte counts >= 0")
        check_byte_counts(p, col, raw, vals)
        nan_text = int((raw.str.lower().isin(["nan", "na", "null", "none"])).sum())
        if nan_text:
            notes.append(f"{nan_text} '{col}' cell(s) were NaN/null: treated as not measured")
        out[col] = vals
    out["event"] = df.get("event", pd.Series("", index=df.index)).fillna("").astype(str)
    out["note"] = df.get("note", pd.Series("", index=df.index)).fillna("").astype(str)
    measured = out[list(FLOAT_COLUMNS)].notna().any(axis=1)
    if not measured.any():
        raise _bad(p, "has rows but not a single memory measurement", "check the sampler's gap notes in the file")
    return _finish(p, out, comments, notes)


def _header(comments: list[str]) -> dict[str, str]:
    """``# key: value`` comment lines (the sampler's header block) as a dict."""
    out: dict[str, str] = {}
    for line in comments:
        body = line.lstrip("#").strip()
        for part in re.split(r"\s{3,}", body):
            key, sep, value = part.partition(": ")
            if sep and key and " " not in key.strip():
                out.setdefault(key.strip(), value.strip())
    return out


def finite_or_none(value: float | None) -> int | None:
    """An int, or None for None/NaN/inf (so a bad reading becomes 'not measured')."""
    if value is None:
        return None
    f = float(value)
    return int(f) if math.isfinite(f) and f >= 0 else None


class SamplesFile:
    """The sampler's output: an append-only samples CSV written one whole row per ``os.write`` (O_APPEND).

    A killed writer loses at most the row being written; a short write (full disk) is taken back so the
    file stays a sequence of whole rows. Appending refuses a file that is not a zcnb samples CSV and drops
    a partial last row left by an interrupted run (and says so).
    """

    def __init__(self, path: Path, *, append: bool = False, fsync: bool = False,
                 writer: Callable[[int, bytes], int] = os.write) -> None:
        self.path, self.append, self.fsync = path, append, fsync
        self._writer = writer
        self._fd = -1

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def open(self) -> tuple[bool, list[str]]:
        """Open for appending; returns (the file already held rows, notes on what was repaired)."""
        out, notes = self.path, list[str]()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(f"cannot create folder {out.parent}: {exc.strerror}", path=str(out),
                                   hint="choose a writable folder for --out") from None
        try:
            fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise OutputWriteError(f"cannot open {out} for writing: {exc.strerror}", path=str(out),
                                   hint="choose a writable folder for --out") from None
        try:
            # One writer per CSV at a time (two samplers would interleave their rows and header blocks): the
            # file itself is locked until close(); a second writer is refused, naming the holder.
            lock_open_file(fd, out, action="sample", error=OutputWriteError,
                           hint="let it finish (or stop it), or write to another --out")
            exists = self._check_existing(out, fd, notes)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return exists, notes

    def _check_existing(self, out: Path, fd: int, notes: list[str]) -> bool:
        """True when the file already holds rows; refuses what must not be appended to; drops a partial row."""
        size = os.fstat(fd).st_size
        if size and not self.append:
            raise ConfigError(f"{out} already holds data", path=str(out),
                              hint="choose a new --out, or pass append=True (--append) to add to it")
        if size:
            raw = out.read_bytes()
            if not raw.startswith(b"# zcnb samples"):
                raise ConfigError(f"{out} is not a zcnb samples CSV: refusing to append", path=str(out),
                                  hint="choose a new --out")
            if not raw.endswith(b"\n"):
                notes.append("dropped a partial last row left by an interrupted run")
                try:
                    os.ftruncate(fd, raw.rfind(b"\n") + 1)
                except OSError as exc:
                    raise OutputWriteError(f"cannot repair {out}: {exc.strerror}", path=str(out),
                                           hint="choose a writable --out") from None
        return bool(size)

    def write(self, text: str) -> None:
        """Append ``text`` (whole rows) in one write; :class:`OutputWriteError` when it cannot be written whole."""
        data = text.encode("utf-8")
        try:
            n = self._writer(self._fd, data)
            if n != len(data):
                if n > 0:  # take the partial row back so the file stays a sequence of whole rows
                    os.ftruncate(self._fd, os.fstat(self._fd).st_size - n)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + " (short write)")
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            raise OutputWriteError(f"cannot write to {self.path}: {exc.strerror or exc}; rows written before are intact",
                                   path=str(self.path), hint="free space or choose another --out, then sample again "
                                   "with --append") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

