"""The native C scanner (``zcnb.logs._scan``) and the Python engine give IDENTICAL summaries.

Both engines run on the same files (generated gateway logs, the bad-input corpus, CRLF, invalid UTF-8, 1 MB
lines, truncated last lines, hypothesis-generated logs) and the full ``LogSummary.to_dict()`` plus the bucket
table must match; only the note naming the engine differs. Inputs the C scanner cannot judge make it give way
to the Python engine, and the notes say so.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcnb.exceptions import ConfigError
from zcnb.logs import LogSummary, summarize_logs
from zcnb.logs import entries as logs
from zcnb.logs.native import native_status

sys.path.insert(0, str(Path(__file__).parent))
from test_logs import DATA, make_log

NATIVE, WHY = native_status()
needs_native = pytest.mark.skipif(not NATIVE, reason=f"zcnb.logs._scan not built ({WHY})")


def _plain(s: LogSummary) -> dict[str, Any]:
    d = s.to_dict()
    d["notes"] = [n for n in d["notes"] if not n.startswith("engine:")]
    return d


def _engine(s: LogSummary) -> str:
    return next(n for n in s.notes if n.startswith("engine:"))


def assert_same(path: Path, **kw: Any) -> LogSummary:
    py = summarize_logs(path, engine="python", **kw)
    c = summarize_logs(path, engine="native", **kw)
    assert _engine(py) == "engine: python (requested)"
    assert _plain(c) == _plain(py)
    assert c.buckets.equals(py.buckets)
    return c


@needs_native
@pytest.mark.parametrize("forms", ["both", "tool", "token"])
@pytest.mark.parametrize("bucket", ["1s", "30s", "1min"])
def test_generated_logs(tmp_path: Path, forms: str, bucket: str) -> None:
    path = tmp_path / "g.log"
    truth = make_log(path, forms=forms, restart_at=1500, mixed=True)
    c = assert_same(path, unit="zeptoclaw-gateway", bucket=bucket)
    assert _engine(c).startswith("engine: native")
    assert c.skill_counts == dict(truth)
    assert_same(path, bucket=bucket)  # no unit: the other unit's lines count too


@needs_native
@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir()))
@pytest.mark.parametrize("unit", [None, "zeptoclaw-gateway"])
def test_bad_input_corpus(name: str, unit: str | None) -> None:
    assert_same(DATA / name, unit=unit, bucket="1s")


@needs_native
def test_crlf_invalid_utf8_truncated_and_big_lines(tmp_path: Path) -> None:
    pre = "2026-11-28T10:00:0{s}+0000 h zeptoclaw-gateway[7]: "
    lines = [
        (pre.format(s=0) + 'info: [agent] tool skill args={"name":"Git_Workflow"}\r').encode(),
        (pre.format(s=1) + "error(gpa): memory address 0x7f00 leaked: \xff\r").encode("latin-1"),
        (pre.format(s=1) + "warning: unauthorized GET /health 12ms\r").encode(),
        pre.format(s=2).encode() + b"info: [agent] invoking skill:web-search \xc3\x28 skill:x_y\r",
        (pre.format(s=3) + 'info: [agent] tool skill args={"name":"' + "z" * (1 << 20) + '"}').encode(),
        (pre.format(s=4) + "debug: [gateway] GET /metrics alloc free").encode(),
        (pre.format(s=5) + 'error: [nim] 503 after 99ms [ws] [heartbeat] ok').encode(),
    ]
    path = tmp_path / "crlf.log"
    path.write_bytes(b"\n".join(lines))  # no final newline: the last line is cut short
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1s")
    assert c.requests.get("GET /metrics") == 1 and c.levels["error"] == 2
    raw = tmp_path / "raw.log"
    raw.write_bytes(b"\r\n".join(ln.split(b"]: ", 1)[1] for ln in lines) + b"\r\nMain Token: a Main Token: b")
    r = assert_same(raw)
    assert len(r.restarts) == 1  # two banners (one line) -> one restart, as bytes.count sees them


@needs_native
def test_threads_and_ranges_match_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "g.log"
    make_log(path, n=20000, restart_at=9000, mixed=True)
    ref = summarize_logs(path, unit="zeptoclaw-gateway", bucket="10s", engine="python", workers=1)
    monkeypatch.setattr(logs, "NATIVE_PARALLEL_MIN_BYTES", 1)
    for workers in (2, 3, 7):
        c = summarize_logs(path, unit="zeptoclaw-gateway", bucket="10s", engine="native", workers=workers)
        assert f"{workers} threads" in _engine(c)
        assert _plain(c) == _plain(ref) and c.buckets.equals(ref.buckets)


@needs_native
@pytest.mark.parametrize("line,reason", [
    ("2026-11-28T10:00:00.1234567+0000 h zeptoclaw-gateway[1]: info: x", "fraction digits"),
    ("2026-11-28T10:00:00+0075 h zeptoclaw-gateway[1]: info: x", "timezone offset"),
])
def test_gives_way_to_python_and_says_so(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "odd.log"
    path.write_text("2026-11-28T10:00:00+0000 h zeptoclaw-gateway[1]: info: [agent] skill:a\n" + line + "\n")
    s = summarize_logs(path, engine="native")
    assert _engine(s).startswith("engine: python (C scanner gave way:") and reason in _engine(s)
    assert s.skill_counts == {"a": 1}


@needs_native
def test_line_longer_than_max_line_gives_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.log"
    path.write_bytes(b"2026-11-28T10:00:00+0000 h zeptoclaw-gateway[1]: info: skill:a " + b"x" * (5 << 20) + b"\n")
    s = summarize_logs(path)
    assert "gave way: a line longer than" in _engine(s)


def test_not_built_falls_back_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulates a machine without a compiler by hiding the module (sys.modules entry None -> ImportError)."""
    monkeypatch.setitem(sys.modules, "zcnb.logs._scan", None)
    path = tmp_path / "g.log"
    truth = make_log(path, n=300)
    s = summarize_logs(path)
    assert _engine(s).startswith("engine: python (C scanner not built:")
    assert "pip install -e ." in _engine(s)
    assert s.skill_counts == dict(truth)
    with pytest.raises(ConfigError, match="native log scanner is not available"):
        summarize_logs(path, engine="native")


def test_bad_engine_name(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    make_log(path, n=10)
    with pytest.raises(ConfigError, match="engine 'fast' is not one of"):
        summarize_logs(path, engine="fast")
    assert _engine(summarize_logs(list(logs.read_log_file(path)))) == "engine: python (log entries)"


# --- hypothesis: logs built from fragments that hit every rule (and its edges) --------------------------
_PREFIXES = st.sampled_from([
    "2026-11-28T10:00:0{s}+0000 h zeptoclaw-gateway[{p}]: ", "2026-11-28T10:00:0{s}+00:00 zeptoclaw-gateway[{p}]: ",
    "2026-11-28T10:00:0{s}.5Z h zeptoclaw-gateway[{p}]:", "2026-11-28T10:00:0{s},25-0130 h zeptoclaw-gateway: ",
    "2026-11-28T10:0{s}:00+0000 h other-unit[{p}]: ", "2026-02-30T10:00:0{s}+0000 h zeptoclaw-gateway[{p}]: ",
    "2026-11-28T10:00:0{s}+0000 h a:b zeptoclaw-gateway[{p}]: ", "2026-11-28T10:00:0{s} zeptoclaw-gateway[{p}]: ",
    "", "-- Boot 1 --", "2026-11-28T10:00:0{s}+0000  h zeptoclaw-gateway[{p}]: ",
])
_BODY = st.sampled_from([
    "error: ", "error(gpa): ", "error(DebugAllocator): memory address 0x{n} leaked: ", "warning(gateway): ",
    "warning: unauthorized GET /health ", "debug: [gateway] GET /x{n} ", "debug: alloc ", "info: ", "error(x: ",
    "errors: ", "debug:", "[agent] tool skill args={{\"name\":\"G_w{n}\"}} ", "[agent] tool skill args={{\"name\": ",
    "\"name\":\"late\" ", "[agent] tool shell args=", "[agent] tool skill args={{}} ", "[heartbeat] ", "[ws] ",
    "[ws]x ", "skill:", "skill:a-b_c{n} ", "skillskill:z ", "Main Token: t{n} ", "0xfree ", "0x1ree double free ",
    "{n}.{n} ", "]: error: inner ", "\t", "\r", "\xff\xfe", "é", "DEINIT Free ", "[agent] tool web.fetch args= ",
])


@st.composite
def _log(draw: st.DrawFn) -> bytes:
    out = []
    for _ in range(draw(st.integers(0, 25))):
        pre = draw(_PREFIXES).format(s=draw(st.integers(0, 9)), p=draw(st.sampled_from([1, 2, 123456789012])))
        body = "".join(draw(_BODY).format(n=draw(st.integers(0, 99))) for _ in range(draw(st.integers(0, 5))))
        out.append((pre + body).encode("utf-8", "surrogateescape") if "\xff" not in body
                   else (pre + body).encode("latin-1", "replace"))
    sep = draw(st.sampled_from([b"\n", b"\r\n"]))
    return sep.join(out) + draw(st.sampled_from([b"", b"\n"]))


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_log(), unit=st.sampled_from([None, "zeptoclaw-gateway"]), bucket=st.sampled_from(["1s", "1min"]))
def test_property_engines_identical(tmp_path: Path, data: bytes, unit: str | None, bucket: str) -> None:
    path = tmp_path / "h.log"
    path.write_bytes(data)
    assert_same(path, unit=unit, bucket=bucket)


@needs_native
@pytest.mark.slow
def test_big_random_log_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few MB of mixed traffic through several threads and the Python worker processes."""
    rng = random.Random(3)
    path = tmp_path / "big.log"
    bodies = ["info: [agent] tool skill args={\"name\":\"s%d\"}", "info: [agent] invoking skill:s%d",
              "warning(gateway): unauthorized GET /health %d", "error: [nim] 503 after %dms", "debug: alloc %d",
              "info: [agent] tool shell args={\"n\":%d}", "info: [heartbeat] ok %d"]
    with open(path, "w") as fh:
        for i in range(60000):
            pid = 10 if i < 30000 else 11
            fh.write(f"2026-11-28T{10 + i // 36000:02d}:{i // 600 % 60:02d}:{i // 10 % 60:02d}+0000 h "
                     f"zeptoclaw-gateway[{pid}]: {rng.choice(bodies) % rng.randint(0, 9)}\n")
    monkeypatch.setattr(logs, "NATIVE_PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(logs, "PARALLEL_MIN_BYTES", 1)
    py = summarize_logs(path, engine="python", workers=2, unit="zeptoclaw-gateway")
    c = summarize_logs(path, engine="native", workers=2, unit="zeptoclaw-gateway")
    assert _plain(c) == _plain(py) and c.buckets.equals(py.buckets)
    assert len(c.restarts) == 1
