"""Error groups are bounded: a log with more distinct error/warning message shapes than MAX_GROUPS keeps the
first MAX_GROUPS shapes as groups and counts the rest as 'other', says so, and both engines agree."""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest

from zcnb.logs import summarize_logs
from zcnb.logs.native import native_status
from zcnb.logs.scan import MAX_GROUPS

NATIVE, WHY = native_status()


def _word(i: int) -> str:
    """A distinct letters-only word per i (numbers would be normalised away into one shape)."""
    out = ""
    while True:
        out += string.ascii_lowercase[i % 26]
        i //= 26
        if not i:
            return out


def _write(path: Path, shapes: int, *, repeat_first: int = 50) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(f"2026-11-20T10:00:{k % 60:02d}+0000 gw01 zeptoclaw-gateway[4100]: error: [nim] upstream 503 "
                      f"after {k}ms\n" for k in range(repeat_first))  # a frequent group, first seen at line 1
        for i in range(shapes):
            lvl = "warning" if i % 3 == 0 else "error"
            fh.write(f"2026-11-20T10:{(i // 60) % 60:02d}:{i % 60:02d}+0000 gw01 zeptoclaw-gateway[4100]: "
                     f"{lvl}(gpa): shape {_word(i)} free {i}\n")


def _plain(s: object) -> dict[str, object]:
    d = s.to_dict()  # type: ignore[attr-defined]
    d["notes"] = [n for n in d["notes"] if not n.startswith("engine:")]
    return d


def test_more_shapes_than_the_cap_are_counted_as_other(tmp_path: Path) -> None:
    extra = 700
    path = tmp_path / "many.log"
    _write(path, MAX_GROUPS - 1 + extra)
    py = summarize_logs(path, engine="python", unit="zeptoclaw-gateway", workers=1)
    total = 50 + MAX_GROUPS - 1 + extra
    assert py.levels["error"] + py.levels["warning"] == total  # every line still counts in the levels
    assert sum(py.other_errors.values()) == extra
    other_warn = sum(1 for i in range(MAX_GROUPS - 1, MAX_GROUPS - 1 + extra) if i % 3 == 0)
    assert py.other_errors == {"error": extra - other_warn, "warning": other_warn}
    assert py.allocator["error(gpa)"] == MAX_GROUPS - 1 + extra and py.alloc_mentions["free"] == MAX_GROUPS - 1 + extra
    assert py.top_errors.iloc[0]["count"] == 50 and "upstream 503" in py.top_errors.iloc[0]["message"]
    assert list(py.top_errors["message"].iloc[-2:]) == [
        f"(other error messages: shapes beyond the first {MAX_GROUPS} distinct ones)",
        f"(other warning messages: shapes beyond the first {MAX_GROUPS} distinct ones)"]
    assert any(f"more than {MAX_GROUPS} distinct error/warning message shapes" in n and f"{extra} further" in n
               for n in py.notes)
    if NATIVE:
        c = summarize_logs(path, engine="native", unit="zeptoclaw-gateway", workers=1)
        assert _plain(c) == _plain(py) and c.buckets.equals(py.buckets)


# VmHWM, not ru_maxrss: on Linux ru_maxrss survives execve, so a child forked from a big pytest process would
# report the parent's peak (VmHWM belongs to the child's own address space).
_PEAK = """
import sys
from zcnb.logs import summarize_logs
s = summarize_logs(sys.argv[1], engine=sys.argv[2], unit="zeptoclaw-gateway", workers=1)
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
print(hwm / 1024, sum(s.other_errors.values()))
"""


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["native", "python"])
def test_memory_does_not_grow_with_the_number_of_shapes(tmp_path: Path, engine: str) -> None:
    """Peak RSS of a child summarising 40k vs 400k distinct long error messages (each ~1 KB): within 24 MiB."""
    if engine == "native" and not NATIVE:
        pytest.skip(f"native scanner not built: {WHY}")
    peaks = []
    for n in (40_000, 400_000):
        path = tmp_path / f"{n}.log"
        pad = "x" * 1000
        with open(path, "w", encoding="utf-8") as fh:
            fh.writelines(f"2026-11-20T10:00:00+0000 gw01 zeptoclaw-gateway[1]: error: {_word(i)} {pad}\n"
                          for i in range(n))
        out = subprocess.run([sys.executable, "-c", _PEAK, str(path), engine], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[1]).stdout.split()
        peaks.append(float(out[0]))
        assert int(out[1]) == n - MAX_GROUPS
        path.unlink()
    assert peaks[1] - peaks[0] < 24, json.dumps(peaks)
