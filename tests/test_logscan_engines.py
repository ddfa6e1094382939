"""The native C scanner (``zcnb.logs._scan``) and the Python engine give IDENTICAL summaries.

Both engines run on the same files (generated gateway logs, the bad-input corpus, CRLF, invalid UTF-8, 1 MB
lines, truncated last lines, hypothesis-generated logs) and the full ``LogSummary.to_dict()`` plus the bucket
table must match; only the note naming the engine differs. Inputs the C scanner cannot judge make it give way
to the Python engine, and the notes say so.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcnb.exceptions import ConfigError, ZcnbError
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


def assert_same_in_ranges(path: Path, ref: LogSummary, monkeypatch: pytest.MonkeyPatch, workers: int,
                          **kw: Any) -> LogSummary:
    """The native engine in ``workers`` byte ranges (threads) gives ``ref``, the summary of one pass."""
    monkeypatch.setattr(logs, "NATIVE_PARALLEL_MIN_BYTES", 1)
    many = summarize_logs(path, engine="native", workers=workers, **kw)
    assert _engine(many).startswith(f"engine: native (C scanner, {workers} threads")
    assert _plain(many) == _plain(ref)
    return many


def assert_same(path: Path, **kw: Any) -> LogSummary:
    py = summarize_logs(path, engine="python", **kw)
    c = summarize_logs(path, engine="native", **kw)
    assert _engine(py) in ("engine: python (requested)", f"engine: python (requested; {logs._ENTRY_FORMATS['short']})")
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


CORPUS = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and p.suffix != ".py")


@needs_native
@pytest.mark.parametrize("name", CORPUS)
@pytest.mark.parametrize("unit", [None, "zeptoclaw-gateway"])
def test_bad_input_corpus(name: str, unit: str | None) -> None:
    """The bad-input corpus (tests/data/logs/, bad/) and the logs written by the real gateway (real/): the same
    summary, or the same refusal (binary data)."""
    try:
        summarize_logs(DATA / name, engine="python", unit=unit, bucket="1s")
    except ZcnbError as exc:
        with pytest.raises(type(exc)) as native:
            summarize_logs(DATA / name, engine="native", unit=unit, bucket="1s")
        assert str(native.value) == str(exc)
        return
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
def test_tags_and_error_texts_of_every_length(tmp_path: Path) -> None:
    """Tags rejected by their first bytes (and those too near the end of the data for that), and error texts of
    every length that differ in one byte (hashed in 4/8/16-byte steps): the native engine agrees with Python."""
    stamp = "2026-11-28T10:00:{:02d}+0000 h zeptoclaw-gateway[7]: "
    lines = []
    for n in range(1, 41):
        for last in "ab":
            lines.append(stamp.format(n % 60) + "error: " + "x" * (n - 1) + last)
            lines.append(stamp.format(n % 60) + "Warn: " + "y" * (n - 1) + last)
    tags = ["[agent] tool shell args={}", "[agent] tool skill args={\"name\":\"git_x\"}", "[agent] toolX args=",
            "[agent]  tool a args=", "[heartbeat] ok", "[heartbeatX ok", "[ws] up", "[wsX] up", "[ws]", "[w",
            "[heartbeat]", "[agent] tool", "[[ws] x", "[agent] tool a args=[heartbeat] [ws] z"]
    for k, tag in enumerate(tags):
        lines.append(stamp.format(k) + "info: " + tag)
        lines.append(stamp.format(k) + "info: pad " + "z" * k + " " + tag)
    body = "\n".join(lines)
    for tail in ("[heartbeat] ", "[ws] ", "[agent] tool q args=", "[hea", "[ws"):  # a tag at the very end
        path = tmp_path / f"t{len(tail)}.log"
        path.write_text(body + "\n" + stamp.format(1) + "info: " + tail)
        s = assert_same(path, unit="zeptoclaw-gateway", bucket="1s")
        assert s.levels["error"] == 80 and s.levels["warning"] == 80
        assert set(s.top_errors["count"]) == {1}  # every text its own group
    assert s.requests.get("heartbeat", 0) >= 4 and s.requests.get("ws", 0) >= 3


@needs_native
def test_numbers_and_tokens_across_block_edges(tmp_path: Path) -> None:
    """Error texts with a number at every offset (the C engine finds digits 32 bytes a step and groups lines
    with a number apart from verbatim repeats), repeated verbatim and varied, and skill tokens, tags and line ends
    at every offset around the 32- and 64-byte steps of the line scan: the native engine agrees with Python."""
    stamp = "2026-11-28T10:{:02d}:{:02d}+0000 h zeptoclaw-gateway[7]: "
    lines = []
    for k in range(140):
        t = stamp.format(k // 60, k % 60)
        pad = "p" * k
        lines += [t + f"error: {pad} upstream 503 after {k}ms", t + f"error: {pad} upstream 503 after 7ms",
                  t + f"error: {pad} upstream 503 after 7ms", t + f"warning(gateway): {pad}0x7f{k:x} leaked",
                  t + f"warning(gateway): {pad} no number", t + f"warning(gateway): {pad} no number",
                  t + f"info: {pad}skill:git-x{k % 3} [heartbeat] ok", t + f"info: {pad[:-1]}l:skill:web{k % 2}",
                  t + "Connection error: " + pad + "error.RateLimitExceeded", t + pad]
    path = tmp_path / "edges.log"
    path.write_text("\n".join(lines) + "\n")
    s = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    assert s.levels["error"] == 140 * 4 and s.levels["warning"] == 140 * 3
    assert int(s.skills["count"].sum()) == 140 * 2
    # a line with its own number and two verbatim repeats with another number: one group of 3 per offset
    assert set(s.top_errors["count"]) == {3}


@needs_native
@pytest.mark.parametrize("line,reason", [
    ("2026-11-28T10:00:00+0075 h zeptoclaw-gateway[1]: info: x", "timezone offset"),
])
def test_gives_way_to_python_and_says_so(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "odd.log"
    path.write_text("2026-11-28T10:00:00+0000 h zeptoclaw-gateway[1]: info: [agent] skill:a\n" + line + "\n")
    s = summarize_logs(path, engine="native")
    assert _engine(s).startswith("engine: python (C scanner gave way:") and reason in _engine(s)
    assert s.skill_counts == {"a": 1}


_MAX = 4 << 20  # zcnb.logs.message.MAX_LINE


def _long(stamp: bytes, n: int, end: bytes = b"\n") -> bytes:
    """A line of n bytes before its line break: skill:head-a near its start, skill:tail-b at its end."""
    head = stamp + b"info: skill:head-a "
    return (head + b"y" * max(0, n - len(head) - 13) + b" skill:tail-b")[:n] + end


# lengths around MAX_LINE, longer than the C scanner's 8 MiB window, CRLF, and a last line without a newline
_LONG_SIZES = [(100, b"\n"), (_MAX - 1, b"\n"), (_MAX, b"\n"), (_MAX + 1, b"\n"), (_MAX + 14, b"\n"), (5 << 20, b"\n"),
               (100, b"\n"), (9 << 20, b"\n"), (100, b"\n"), (_MAX, b"\r\n"), (_MAX - 1, b"\r\n"), (100, b"\n"),
               (20 << 20, b"")]


@needs_native
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["short-iso", "short", "json"])
def test_lines_longer_than_max_line_are_read_natively(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line over MAX_LINE = 4 MiB used to send the whole file to the Python engine (~100x slower). Both engines
    now cut it the same way, in one pass or in byte ranges: a text line's first 4 MiB are read (``cut_lines``
    counts it: a skill token past the cut is not counted, one cut in two is counted as far as it goes), a JSON line
    that long is unreadable. Lines of exactly 4 MiB are whole (CR counted as a byte of the line)."""
    path = tmp_path / f"long.{fmt}"
    rows = []
    for i, (n, end) in enumerate(_LONG_SIZES):
        if fmt == "json":
            row = {"__REALTIME_TIMESTAMP": str(1795900000000000 + i * 1000000), "_PID": "7", "MESSAGE": "info: skill:a "}
            pad = n - len(json.dumps(row, separators=(",", ":")))
            row["MESSAGE"] += "z" * max(0, pad)
            rows.append(json.dumps(row, separators=(",", ":")).encode() + end)
        else:
            stamp = b"2026-11-28T10:00:%02d+0000 h zeptoclaw-gateway[1]: " if fmt == "short-iso" else \
                b"Nov 28 10:00:%02d h zeptoclaw-gateway[1]: "
            rows.append(_long(stamp % i, n, end))
    path.write_bytes(b"".join(rows))
    over = [n + (end == b"\r\n") > _MAX for n, end in _LONG_SIZES]
    s = assert_same(path, bucket="1min")
    assert _engine(s).startswith("engine: native")
    if fmt == "json":
        assert s.unreadable == sum(over) == 6 and s.cut_lines == 0 and s.skill_counts == {"a": len(rows) - 6}
    else:
        heads = [r.rstrip(b"\n")[:_MAX] for r in rows]  # what is read of each line
        assert s.cut_lines == sum(over) == 6 and s.n_lines == len(rows) and s.skill_counts["head-a"] == len(rows)
        assert s.skill_counts["tail-b"] == sum(h.rstrip(b"\r").endswith(b"skill:tail-b") for h in heads) == len(rows) - 5
        assert f"{sum(over)} line(s) longer than 4 MiB" in " ".join(s.notes)
    for workers in (2, 3, 5):
        assert_same_in_ranges(path, s, monkeypatch, workers, bucket="1min")


def _bounded(data: bytes, limit: int) -> tuple[list[bytes], int]:
    """bounded_lines' lines (without their newline) and how many it cut."""
    import io

    from zcnb.logs.message import ReadStats, bounded_lines

    stats = ReadStats()
    lines = [ln[:-1] if ln.endswith(b"\n") else ln for ln in bounded_lines(io.BytesIO(data), limit, stats=stats)]
    return lines, stats.cut_lines


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.tuples(st.integers(0, 300), st.sampled_from([b"\n", b"\r\n"])), max_size=12),
       last=st.booleans(), chunk=st.integers(1, 400), cuts=st.lists(st.integers(0, 4000), max_size=4))
def test_python_reader_cuts_long_lines_wherever_its_reads_fall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               sizes: list[tuple[int, bytes]], last: bool, chunk: int,
                                                               cuts: list[int]) -> None:
    """iter_chunks (the Python engine's reader of text logs) cuts a line longer than MAX_LINE exactly as bounded_lines
    does, whatever its read size and byte ranges: the C scanner follows that one rule. (It used to depend on where the
    reads fell: a line of 4-8 MiB was cut or kept whole by its offset.)"""
    from zcnb.logs import chunks

    limit = 64
    monkeypatch.setattr(chunks, "MAX_LINE", limit)
    monkeypatch.setattr(chunks, "CHUNK", chunk)
    data = b"".join(bytes([97 + i % 26]) * n + end for i, (n, end) in enumerate(sizes)) + (b"tail" * 20 if last else b"")
    path = tmp_path / "lines.log"
    path.write_bytes(data)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    got: list[bytes] = []
    n_cut = [0]
    for a, z in itertools.pairwise(bounds):
        got += b"".join(chunks.iter_chunks(str(path), a, z, cut=n_cut)).split(b"\n")[:-1]
    want, want_cut = _bounded(data, limit)
    assert got == want
    assert n_cut[0] == want_cut == sum(1 for n, end in sizes if n + len(end) - 1 > limit) + (last and 80 > limit)


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
    # the same hour, other minutes and seconds (the native engine reads only MM:SS then), invalid ones, fractions
    "2026-11-28T10:5{s}:59+0000 h zeptoclaw-gateway[{p}]: ", "2026-11-28T10:00:6{s}+0000 h zeptoclaw-gateway[{p}]: ",
    "2026-11-28T10:6{s}:00+0000 h zeptoclaw-gateway[{p}]: ", "2026-11-28T10:0{s}:00.123456+0000 h zeptoclaw-gateway[{p}]: ",
    "2026-11-28T11:0{s}:00,5+0000 h zeptoclaw-gateway[{p}]: ",
    # nanoseconds (Go's RFC3339Nano, date --iso-8601=ns): fromisoformat keeps microseconds, skips the rest
    "2026-11-28T10:0{s}:00.123456789+00:00 h zeptoclaw-gateway[{p}]: ", "2026-11-28T10:00:0{s}.9999999Z zeptoclaw-gateway: ",
])
_BODY = st.sampled_from([
    "error: ", "error(gpa): ", "error(DebugAllocator): memory address 0x{n} leaked: ", "warning(gateway): ",
    "warning: unauthorized GET /health ", "debug: [gateway] GET /x{n} ", "debug: alloc ", "info: ", "error(x: ",
    "errors: ", "debug:", "[agent] tool skill args={{\"name\":\"G_w{n}\"}} ", "[agent] tool skill args={{\"name\": ",
    "\"name\":\"late\" ", "[agent] tool shell args=", "[agent] tool skill args={{}} ", "[heartbeat] ", "[ws] ",
    "[ws]x ", "skill:", "skill:a-b_c{n} ", "skillskill:z ", "Main Token: t{n} ", "0xfree ", "0x1ree double free ",
    "{n}.{n} ", "]: error: inner ", "\t", "\r", "\xff\xfe", "é", "DEINIT Free ", "[agent] tool web.fetch args= ",
    "info: ", "info(x): ", "infos: ", "info:", "thread {n} panic: ", "thread  panic: ", "panic: ", "panic:",
    "Warn: ", "Warning: ", "Warn:", "Error: ", "Connection error: error.X{n} ", "Accept error: ", "A error: ",
    "Bus error at address 0x{n} ", "Segmentation fault at address ", "Illegal instruction at address ",
    "/src/gw.zig:{n}:5: 0x{n} in start (root.zig) ", "    ^", "ZeptoClaw Gateway Server v1.0.0",
])


def _lines(draw: st.DrawFn, prefixes: st.SearchStrategy[str], seps: list[bytes]) -> bytes:
    """Up to 25 lines, each a prefix (its second and pid drawn) and up to 5 body fragments, joined by a drawn
    line end."""
    out = []
    for _ in range(draw(st.integers(0, 25))):
        pre = draw(prefixes).format(s=draw(st.integers(0, 9)), p=draw(st.sampled_from([1, 2, 123456789012])))
        body = "".join(draw(_BODY).format(n=draw(st.integers(0, 99))) for _ in range(draw(st.integers(0, 5))))
        out.append((pre + body).encode("utf-8", "surrogateescape") if "\xff" not in body
                   else (pre + body).encode("latin-1", "replace"))
    return draw(st.sampled_from(seps)).join(out) + draw(st.sampled_from([b"", b"\n"]))


@st.composite
def _log(draw: st.DrawFn) -> bytes:
    return _lines(draw, _PREFIXES, [b"\n", b"\r\n"])


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


# --- the benchmark's log shapes (small): dense, precise stamps, error-heavy, journal export -------------------
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import skill_count  # noqa: E402


@needs_native
@pytest.mark.parametrize("shape", sorted(skill_count.SHAPES))
def test_bench_shapes_identical(tmp_path: Path, shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shape of bench/skill_count.py, in several threads: the native engine runs and agrees with Python."""
    path = tmp_path / f"{shape}.log"
    skill_count.SHAPES[shape](path, 1.5 if shape.startswith("journal") else 0.4, seed=5)
    monkeypatch.setattr(logs, "NATIVE_PARALLEL_MIN_BYTES", 1)
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min", workers=3)
    assert _engine(c) == "engine: native (C scanner, 3 threads" + (
        f"; {logs._ENTRY_FORMATS['short']})" if shape == "dense-short" else ")")
    assert c.n_lines > 1000 and sum(c.skill_counts.values()) > 50 and c.levels["info"] > 100
    if shape == "error-heavy":
        assert c.allocator["leak reports"] > 0 and c.levels["error"] > c.n_lines // 10 and c.levels["none"] > 100
    if shape.startswith("journal"):
        assert c.pids == (4100, 4101) and list(c.restarts["reason"]) == ["pid change"]


# --- saved journalctl -o json: hypothesis over fields, values and JSON spellings ---------------------------
_MSG = st.lists(_BODY, max_size=4).map("".join)
_JTEXT = st.one_of(_MSG, st.lists(_MSG, min_size=1, max_size=3).map("\n".join))
_DIGITS = st.integers(0, 10**16).map(str)
_VALUES = {
    "MESSAGE": st.one_of(_JTEXT, st.none(), _JTEXT.map(lambda t: list(t.encode("utf-8", "surrogatepass"))), st.integers(0, 99),
                         st.binary(max_size=20).map(list), st.lists(st.one_of(_JTEXT, st.none()), max_size=3),
                         st.sampled_from(["\ud800 lone", "astral \U0001f600 skill:a", "nul \x00 ctl \x1f"])),
    "_PID": st.one_of(st.sampled_from(["100", "101", "", "x", "007", " ", "-"]), st.none(),
                      st.just(["100", "101"]), st.integers(0, 10**6)),  # numbers, as log shippers write them
    "PRIORITY": st.one_of(st.sampled_from(["6", "3", "06", "", "warning"]), st.none(), st.integers(0, 9)),
    "__REALTIME_TIMESTAMP": st.one_of(_DIGITS, st.sampled_from(["", "soon", "1795900000000000"]), st.none(),
                                      st.integers(0, 10**16)),
    "_SYSTEMD_USER_UNIT": st.sampled_from(["zeptoclaw-gateway.service", "other.service", "", None]),
    "_SYSTEMD_UNIT": st.sampled_from(["zeptoclaw-gateway.service", "user@1000.service", "", None]),
    "SYSLOG_IDENTIFIER": st.sampled_from(["zeptoclaw-gateway", "other", None]),
    "__CURSOR": st.text(max_size=8),
    "_HOSTNAME": st.one_of(st.text(max_size=5), st.integers(), st.lists(st.integers(), max_size=2)),
}


@st.composite
def _journal(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 9))
        if kind == 0:  # garbage, other JSON values, blank lines
            lines.append(draw(st.sampled_from([b"", b"  ", b"\x0b", b"[1, 2]", b'"text"', b"{", b"{}", b"null",
                                               b'{"MESSAGE": "x"} extra', b'{"MESSAGE": "a\tb"}', b"\xff{}",
                                               b'\x0b{"MESSAGE": "vt"}', b'{"MESSAGE": "bad \\q"}'])))
            continue
        keys = draw(st.lists(st.sampled_from(sorted(_VALUES)), unique=True, max_size=len(_VALUES)))
        obj = {k: draw(_VALUES[k]) for k in keys}
        text = json.dumps(obj, ensure_ascii=draw(st.booleans()),
                          separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
        if draw(st.booleans()):
            text = text.replace('"MESSAGE"', '"\\u004dESSAGE"').replace('"_PID"', '"\\u005fPID"')
        if '"MESSAGE"' in text and draw(st.integers(0, 5)) == 0:
            text = text[:-1] + ', "MESSAGE": "repeated: the last wins"}'
        # journalctl -o json-seq puts an RS byte before each record, -o json-sse "data: "
        lines.append(draw(st.sampled_from([b"", b"", b"\x1e", b"data: "])) + text.encode("utf-8", "surrogatepass"))
    return draw(st.sampled_from([b"\n", b"\r\n"])).join(lines) + draw(st.sampled_from([b"", b"\n"]))


@needs_native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_journal(), unit=st.sampled_from([None, "zeptoclaw-gateway"]), bucket=st.sampled_from(["1s", "1min"]))
def test_property_journal_json_identical(tmp_path: Path, data: bytes, unit: str | None, bucket: str) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"__REALTIME_TIMESTAMP": "1795900000000000", "MESSAGE": "first"}\n' + data)
    c = assert_same(path, unit=unit, bucket=bucket)
    assert _engine(c).startswith("engine: native")  # every value above is one the C scanner reads itself


@needs_native
@pytest.mark.parametrize("value", ['-3', '1.5', '1e3', 'true', '{"a": 1}', '[1, "a"]', '"\\u0661"', '"12a"'])
def test_journal_json_values_only_python_reads_give_way(tmp_path: Path, value: str) -> None:
    """A fraction, negative number, object or mixed array where a text is expected: Python's str() of it is what
    counts (non-negative integers are read natively: their str() is their text)."""
    path = tmp_path / "odd.jsonl"
    path.write_text('{"__REALTIME_TIMESTAMP": "1795900000000000", "_PID": "1", "MESSAGE": "skill:a"}\n'
                    f'{{"__REALTIME_TIMESTAMP": "1795900001000000", "_PID": {value}, "MESSAGE": "skill:b"}}\n')
    c = assert_same(path)
    assert _engine(c).startswith("engine: python (C scanner gave way: a journal JSON")
    assert c.skill_counts == {"a": 1, "b": 1}


def test_journal_json_file_equals_its_entries(tmp_path: Path) -> None:
    """summarize_logs(path) of a saved journalctl -o json counts what summarize_logs(read_journal_json(path)) does;
    a byte-array MESSAGE is decoded, a multi-line MESSAGE counts as its lines."""
    from zcnb.logs.journal import read_journal_json

    rows = [{"__REALTIME_TIMESTAMP": str(1795900000000000 + i * 700_000), "_PID": "100" if i < 30 else "101",
             "_SYSTEMD_USER_UNIT": "zeptoclaw-gateway.service", "PRIORITY": "6",
             "MESSAGE": m} for i, m in enumerate(
                 [list(b"error: bad \xff bytes skill:git_workflow"), "info: a\nerror: second line\nskill:x"]
                 + ["info: [agent] tool skill args={\"name\":\"web_search\"}"] * 28
                 + ["thread 7 panic: reached unreachable code", "Main Token: t", "Warn: w"] * 3)]
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = summarize_logs(path, unit="zeptoclaw-gateway")
    e = summarize_logs(read_journal_json(path), unit="zeptoclaw-gateway")
    assert _plain(s) | {"source": ""} == _plain(e) | {"source": ""} and s.buckets.equals(e.buckets)
    assert s.n_lines == len(rows) + 2 and s.levels["error"] == 2 + 3 and s.skill_counts["x"] == 1
    assert s.levels["warning"] == 3 and len(s.crashes) == 3  # the crashes come after the last pid change:
    assert list(s.restarts["reason"]) == ["pid change", "crash"] and s.restarts.iloc[1]["new_pid"] is None


# --- saved journalctl -o export: entries with text and binary fields, split across threads ------------------
_EXPORT_MSG = st.one_of(_JTEXT, st.binary(max_size=30), st.just(b"a\n\n__CURSOR=s=fake\n__REALTIME_TIMESTAMP=1\n\nb"),
                        _JTEXT.map(lambda t: t.encode("utf-8", "surrogatepass") + b"\n"))


def export_entry(fields: dict[str, str | bytes | int]) -> bytes:
    """As journalctl -o export writes an entry: the binary form for values that are not printable UTF-8."""
    import struct

    out = b""
    for key, value in fields.items():
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        try:
            printable = data.decode("utf-8").isprintable()
        except UnicodeDecodeError:
            printable = False
        out += (key.encode() + b"=" + data + b"\n" if printable
                else key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
    return out + b"\n"


@st.composite
def _export(draw: st.DrawFn) -> bytes:
    out = []
    for i in range(draw(st.integers(0, 14))):
        fields: dict[str, str | bytes | int] = {"__CURSOR": f"s=x;i={i}"}
        for key in draw(st.lists(st.sampled_from(["__REALTIME_TIMESTAMP", "_PID", "PRIORITY", "_SYSTEMD_USER_UNIT",
                                                  "SYSLOG_IDENTIFIER", "MESSAGE", "_HOSTNAME"]), unique=True)):
            fields[key] = draw({"__REALTIME_TIMESTAMP": _DIGITS, "_PID": st.sampled_from(["100", "101", "", "x"]),
                                "PRIORITY": st.sampled_from(["6", "3", ""]),
                                "_SYSTEMD_USER_UNIT": st.sampled_from(["zeptoclaw-gateway.service", "other.service"]),
                                "SYSLOG_IDENTIFIER": st.sampled_from(["zeptoclaw-gateway", "x"]),
                                "MESSAGE": _EXPORT_MSG, "_HOSTNAME": st.binary(max_size=12)}[key])
        entry = export_entry(fields)
        if draw(st.integers(0, 6)) == 0:  # a repeated field: the first one counts
            entry = entry[:-1] + b"MESSAGE=repeated skill:r\n\n"
        out.append(entry)
    data = b"".join(out)
    return data[:-draw(st.integers(1, 20))] if data and draw(st.integers(0, 5)) == 0 else data  # a cut last entry


@needs_native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_export(), unit=st.sampled_from([None, "zeptoclaw-gateway"]), workers=st.sampled_from([1, 2, 5]))
def test_property_journal_export_identical(tmp_path: Path, data: bytes, unit: str | None, workers: int) -> None:
    path = tmp_path / "j.export"
    path.write_bytes(b"__CURSOR=s=x;i=first\n__REALTIME_TIMESTAMP=1795900000000000\nMESSAGE=first\n\n" + data)
    logs_native_min = logs.NATIVE_PARALLEL_MIN_BYTES
    try:
        logs.NATIVE_PARALLEL_MIN_BYTES = 1
        c = assert_same(path, unit=unit, bucket="1s", workers=workers)
    finally:
        logs.NATIVE_PARALLEL_MIN_BYTES = logs_native_min
    assert _engine(c).startswith("engine: native")


# --- a dense log as another tool might write it: stamp styles, CRLF, long lines, mixed levels -----------------
_STAMPS = {"z": "%Y-%m-%dT%H:%M:%SZ", "colon": "%Y-%m-%dT%H:%M:%S+00:00", "precise": "%Y-%m-%dT%H:%M:%S.%f+0000",
           "comma": "%Y-%m-%dT%H:%M:%S,%f", "offset": "%Y-%m-%dT%H:%M:%S.%f+01:30",
           "nanos": "%Y-%m-%dT%H:%M:%S.%f987Z"}  # RFC3339Nano: nine fraction digits


@needs_native
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("style", sorted(_STAMPS))
def test_dense_log_of_other_stamp_styles(tmp_path: Path, style: str, crlf: bool) -> None:
    """A new stamp on every line in each short-iso style, CRLF or not, 200 KB lines among them: both engines give
    the same summary, every line has its time, and each skill form's count is what the generator wrote."""
    from collections import Counter
    from datetime import UTC, datetime, timedelta

    rng = random.Random(hash((style, crlf)) & 0xFFFF)
    t = datetime(2026, 11, 20, 10, tzinfo=UTC)
    token: Counter[str] = Counter()
    tool: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    path = tmp_path / "dense.log"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for i in range(4000):
            t += timedelta(milliseconds=rng.randint(1, 300))
            sk = rng.choice(["git_workflow", "web-search", "Code_Review"])
            r = rng.random()
            if r < 0.2:
                body, lv = f"info: [agent] invoking skill:{sk} s{i}", "info"
                token[sk.lower().replace("_", "-")] += 1
            elif r < 0.3:
                body, lv = f'info: [agent] tool skill args={{"name":"{sk}","q":"{"y" * rng.choice([9, 200_000])}"}}', "info"
                tool[sk.lower().replace("_", "-")] += 1
            elif r < 0.4:
                body, lv = f"error(gateway): failed {rng.randint(1, 99)} times", "error"
            elif r < 0.45:
                body, lv = f"Warn: slow {rng.randint(1, 9)}", "warning"
            elif r < 0.5:
                body, lv = "Connection error: error.RateLimitExceeded", "error"
            elif r < 0.53:
                body, lv = "debug: [gateway] GET /health freed 12 bytes", "debug"
            else:
                body, lv = f"  at frame {i}", "none"
            levels[lv] += 1
            fh.write(f"{t.strftime(_STAMPS[style])} gw01 zeptoclaw-gateway[4100]: {body}" + ("\r\n" if crlf else "\n"))
    s = assert_same(path, unit="zeptoclaw-gateway", bucket="10s")
    assert _engine(s).startswith("engine: native")  # nanoseconds included: they used to send the file to Python
    assert s.n_lines == 4000 and s.bad_times == 0 and s.start is not None
    assert {k: s.levels[k] for k in levels} == dict(levels)
    assert dict(zip(s.skills["skill"], s.skills["token_form"])) == dict(token)
    assert dict(zip(s.skills["skill"], s.skills["tool_form"])) == dict(tool)


@needs_native
def test_export_entries_of_every_kind_amid_common_ones(tmp_path: Path) -> None:
    """Binary fields (holding an empty line and '=', or a NUL byte), repeated fields and odd values between thousands of
    common text-only entries, so each kind meets the native reader's map-based path for common entries and its
    field-by-field path side by side: the same summary as the Python engine."""
    import struct

    rng = random.Random(7)

    def field(name: str, value: bytes) -> bytes:
        if b"\n" in value or b"\x00" in value or rng.random() < 0.02:  # as journalctl writes them
            return name.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        return name.encode() + b"=" + value + b"\n"

    out = bytearray()
    usec = 1_795_900_000_000_000
    for i in range(3000):
        usec += rng.randint(1000, 400_000)
        r = rng.random()
        msg = (b"info: [agent] invoking skill:git_workflow" if r < 0.3 else
               b"error: upstream =\n\nfailed skill:web-search" if r < 0.35 else
               b"warning(gateway): unauthorized GET /health" if r < 0.5 else
               b"Connection error: error.RateLimitExceeded" if r < 0.55 else
               b"info: [nim] a=b c=d " + str(i).encode())
        fields = [("__CURSOR", f"s=ab;i={i:x}".encode()), ("__REALTIME_TIMESTAMP", str(usec).encode()),
                  ("_PID", b"4100" if i < 1500 else b"4101"), ("PRIORITY", b"6"),
                  ("_SYSTEMD_USER_UNIT", b"zeptoclaw-gateway.service"), ("SYSLOG_IDENTIFIER", b"zeptoclaw-gateway"),
                  ("MESSAGE", msg)]
        if rng.random() < 0.05:
            fields.append(("MESSAGE", b"a repeated field: the first one counts"))
        if rng.random() < 0.01:
            fields.append(("EXTRA", b"nul \x00 inside"))
        rng.shuffle(fields)
        out += b"".join(field(k, v) for k, v in fields) + b"\n"
    path = tmp_path / "mixed.export"
    path.write_bytes(bytes(out))
    s = assert_same(path, unit="zeptoclaw-gateway", bucket="10s")
    assert _engine(s).startswith("engine: native"), _engine(s)
    assert s.n_lines >= 3000 and s.pids == (4100, 4101)


@needs_native
@pytest.mark.parametrize("hosts", [3, 300])
def test_host_journal_of_interleaved_prefixes(tmp_path: Path, hosts: int) -> None:
    """A whole host's (or a fleet's) short-iso journal: units, hosts, pids and time zones interleave line by line
    (300 hosts: more prefixes than the native engine keeps, so they replace each other; the same stamps in
    +0000, +00:00, Z, +0100 and -0230 side by side, so a prefix seen before must not lend its time zone to another).
    Both engines give the same summary, with and without the unit; the skill counts are what was written."""
    from collections import Counter
    from datetime import UTC, datetime, timedelta

    rng = random.Random(hosts)
    t = datetime(2026, 11, 20, 10, tzinfo=UTC)
    zones = ["+0000", "+00:00", "Z", "+0100", "-0230"]  # the same stamp bytes: other instants
    others = ["systemd[1]: Started session-{n}.scope.", "kernel: audit: type=1400 pid={n}",
              "sshd[{n}]: Accepted publickey for ops", "zeptoclaw-gateway-canary[77]: info: invoking skill:decoy",
              "zeptoclaw-gatewax[{n}]: info: invoking skill:decoy"]  # an ident of the unit's length
    token: Counter[str] = Counter()
    path = tmp_path / "host.log"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(6000):
            t += timedelta(milliseconds=rng.randint(1, 900))
            zone = rng.choice(zones)
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{rng.randint(0, 999999):06d}" if i % 7 == 0 else "")
            host = f"gw{rng.randrange(hosts):03d}"
            if rng.random() < 0.35:
                fh.write(f"{stamp}{zone} {host} {rng.choice(others).format(n=rng.randint(1, 99))}\n")
                continue
            pid = 4100 + (i * 3 // 6000)  # two restarts
            sk = rng.choice(["git_workflow", "web-search", "calendar"])
            r = rng.random()
            body = (f"info: [agent] invoking skill:{sk} s{i}" if r < 0.4 else
                    f"error(gateway): failed {rng.randint(1, 99)} times" if r < 0.6 else
                    "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header" if r < 0.7 else
                    f"info: [nim] request tokens={i}")
            if r < 0.4:
                token[sk.replace("_", "-")] += 1
            fh.write(f"{stamp}{zone} {host} zeptoclaw-gateway[{pid}]: {body}\n")
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    assert _engine(c).startswith("engine: native")
    assert c.skill_counts == dict(token)
    assert len(c.restarts) == 2
    assert_same(path, bucket="1s")  # every unit's lines


def _pid_log(path: Path, pids: list[int], *, start: datetime | None = None) -> None:
    """One gateway line per pid in ``pids`` (a second apart), each a skill call."""
    from datetime import UTC, datetime, timedelta

    t = start or datetime(2026, 11, 20, 10, tzinfo=UTC)
    with open(path, "w", encoding="utf-8") as fh:
        for i, pid in enumerate(pids):
            stamp = (t + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S+0000")
            fh.write(f"{stamp} gw01 zeptoclaw-gateway[{pid}]: info: [agent] invoking skill:calendar n{i}\n")


@needs_native
@pytest.mark.parametrize("case,pids,restarts,side", [
    # two instances of a template unit under one identifier, line by line: side by side, no restarts
    ("alternating", [4100, 4102] * 3000, [], [(4100, 4102)]),
    # a restart, then a second process beside the new one
    ("restart then beside", [4100] * 50 + [4101] * 50 + [4101, 4200] * 100, [(4100, 4101)], [(4101, 4200)]),
    # an old process that logs on after its successor started: a hand-over, side by side
    ("hand-over", [4100] * 50 + [4101, 4100] * 5 + [4101] * 50, [], [(4100, 4101)]),
    # clean restarts only
    ("restarts", [4100] * 10 + [4101] * 10 + [4102] * 10, [(4100, 4101), (4101, 4102)], []),
])
def test_pids_side_by_side_are_not_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str,
                                            pids: list[int], restarts: list[tuple[int, int]],
                                            side: list[tuple[int, int]]) -> None:
    """A pid change is a restart only when the pid before logs no more after it; pids that alternate are processes
    side by side (said in a note), so two interleaved instances give no restart rows and memory stays bounded by the
    number of processes, not of pid changes. Same in both engines, in one pass and in many ranges."""
    path = tmp_path / "pids.log"
    _pid_log(path, pids)
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    got = [(int(a), int(b)) for a, b in zip(c.restarts["old_pid"], c.restarts["new_pid"])]
    assert got == restarts
    assert c.pids == tuple(dict.fromkeys(pids))
    note = [n for n in c.notes if "side by side" in n]
    assert bool(note) == bool(side)
    for a, b in side:
        assert f"{a} and {b}" in note[0]
    for workers in (2, 5):
        assert_same_in_ranges(path, c, monkeypatch, workers, unit="zeptoclaw-gateway", bucket="1min")


@needs_native
def test_more_processes_than_listed(tmp_path: Path) -> None:
    """A log with more distinct pids than MAX_PIDS: the first ones are listed and checked, a note says so."""
    from zcnb.logs.scan import MAX_PIDS

    path = tmp_path / "many.log"
    _pid_log(path, list(range(1000, 1000 + MAX_PIDS + 50)))
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    assert len(c.pids) == MAX_PIDS and len(c.restarts) == MAX_PIDS - 1
    assert any(f"more than {MAX_PIDS:,} processes" in n for n in c.notes)


@needs_native
def test_many_names_fold_into_others_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log with more skill, tool and request names than MAX_NAMED_COLUMNS: the bucket table keeps a column for the
    most counted ones and one (others) column per kind, while every skill's total is what a table without the limit
    gives (each invocation once, both forms, lines without a time); same in both engines."""
    from zcnb.logs import summary as summary_mod

    rng = random.Random(7)
    path = tmp_path / "names.log"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(6000):
            stamp = f"2026-11-20T10:{i // 600 % 60:02d}:{i // 10 % 60:02d}+0000 " if i % 97 else ""
            sk = f"s{rng.randrange(400)}"
            r = rng.random()
            body = (f"info: [agent] invoking skill:{sk}" if r < 0.35 else
                    f'info: [agent] tool skill args={{"name":"{sk}"}}' if r < 0.6 else
                    f"info: [agent] tool t{rng.randrange(300)} args={{}}" if r < 0.8 else
                    f"debug: [gateway] GET /items/{rng.randrange(300)} 200")
            fh.write(f"{stamp}gw01 zeptoclaw-gateway[4100]: {body}\n" if stamp else f"zeptoclaw-gateway[4100]: {body}\n")
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    named = [col for col in c.buckets.columns if col.startswith("skill:") and col != "skill:(others)"]
    assert len(named) == summary_mod.MAX_NAMED_COLUMNS
    for kind in ("skill:", "tool:", "request:"):
        assert f"{kind}(others)" in c.buckets.columns
    assert any("summed in skill:(others), tool:(others), request:(others)" in n for n in c.notes)
    monkeypatch.setattr(summary_mod, "MAX_NAMED_COLUMNS", 10_000)
    wide = summarize_logs(path, unit="zeptoclaw-gateway", bucket="1min", engine="native")
    assert "skill:(others)" not in wide.buckets.columns and len(wide.buckets.columns) > 900
    assert c.skill_counts == wide.skill_counts and len(c.skill_counts) == 400
    assert c.buckets["skill:(others)"].sum() + sum(c.buckets[k].sum() for k in named) == \
        sum(wide.buckets[k].sum() for k in wide.buckets.columns if k.startswith("skill:"))


@needs_native
def test_crash_spam_is_counted_not_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More crash lines than MAX_CRASHES: the first ones are listed, the rest counted in a note; same in both
    engines and in many ranges (memory follows MAX_CRASHES, not the log)."""
    from zcnb.logs.scan import MAX_CRASHES

    path = tmp_path / "crash.log"
    n = MAX_CRASHES + 321
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(2 * n):
            body = f"thread {i} panic: reached unreachable code" if i % 2 else "info: [agent] invoking skill:calendar"
            fh.write(f"2026-11-20T10:{i // 3000 % 60:02d}:{i // 50 % 60:02d}+0000 gw01 zeptoclaw-gateway[4100]: {body}\n")
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    assert len(c.crashes) == MAX_CRASHES and c.levels["error"] == n
    assert any(note.startswith("321 more crash line(s) after the first 10,000") for note in c.notes)
    assert_same_in_ranges(path, c, monkeypatch, 3, unit="zeptoclaw-gateway", bucket="1min")


# --- journalctl's short format (the runbook's default output): lines read as entries without a time ------------
_SHORT_PREFIXES = st.sampled_from([
    "Nov 20 10:00:0{s} gw01 zeptoclaw-gateway[{p}]: ", "Nov  2 10:00:0{s} zeptoclaw-gateway[{p}]: ",
    "Nov 20 10:00:0{s}.123456 gw01 zeptoclaw-gateway[{p}]:", "Nov 20 10:00:0{s} gw01 zeptoclaw-gateway: ",
    "Nov 20 10:00:0{s} gw01 other-unit[{p}]: ", "Nov 20 10:00:0{s} gw01 (sd-pam)[{p}]: ", "nov 20 10:00:0{s} h x: ",
    "Nov 20 10:00:0{s}  gw01 zeptoclaw-gateway[{p}]: ", "Nov 20 10:00:0{s} a:b zeptoclaw-gateway[{p}]: ",
    "Nov 20 10:00:0{s}. gw01 zeptoclaw-gateway[{p}]: ", "Nov 20 10:00:0{s} gw01 zeptoclaw-gateway[x]: ", "",
    "-- Boot 1 --", "Nov 20 10:00:0{s} gw01 zeptoclaw-gateway[{p}]:x", "Nov 20 10:00:0{s} gw01 kernel: ",
])


# invalid UTF-8 of every kind (bad lead bytes, sequences cut short at each length, overlong forms, surrogates,
# past U+10FFFF) and valid multi-byte text next to it: the C scanner decodes it as bytes.decode("utf-8", "replace")
_BAD_UTF8 = st.one_of(st.sampled_from([
    b"\xff", b"\x80", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xe0\x80\x80", b"\xe0\xa0", b"\xed\xa0\x80",
    b"\xed\x9f\xbf", b"\xf0\x90\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf4\x8f\xbf", b"\xf5\x80", b"\xc0\xaf",
    b"\xc1\xbf", b"\xef\xbf\xbd", "\u00e9".encode(), "\U0001f600".encode(), b"\xf0\x9f\x98", b"error: \xe9t\xe9 ",
]), st.binary(max_size=6))


@st.composite
def _short_log(draw: st.DrawFn) -> bytes:
    text = _lines(draw, _SHORT_PREFIXES, [b"\n", b"\r\n", b"\r\r\n"])
    lines = text.split(b"\n")
    for _ in range(draw(st.integers(0, 4))):  # bytes that are not UTF-8 into some lines' messages
        k = draw(st.integers(0, len(lines) - 1))
        lines[k] += draw(_BAD_UTF8).replace(b"\n", b" ") + draw(_BODY).format(n=7).encode()
    return b"\n".join(lines)


@needs_native
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_short_log(), unit=st.sampled_from([None, "zeptoclaw-gateway"]))
def test_property_short_format_identical(tmp_path: Path, data: bytes, unit: str | None) -> None:
    path = tmp_path / "s.log"
    path.write_bytes(b"Nov 20 09:59:59 gw01 zeptoclaw-gateway[7]: info: first\n" + data)  # sniffed as short
    c = assert_same(path, unit=unit, bucket="1min")
    assert _engine(c).startswith("engine: native")  # invalid UTF-8 included: it used to send the file to Python


@needs_native
def test_short_format_runs_native(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense log in journalctl's default format is read by the C scanner (in threads too), with the format's
    caveat in the note; the skill counts are what was written; a line of Latin-1 text is read natively too."""
    from collections import Counter

    rng = random.Random(11)
    want: Counter[str] = Counter()
    path = tmp_path / "short.log"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(20000):
            sk = rng.choice(["git_workflow", "web-search", "calendar"])
            pid = 4100 if i < 12000 else 4101
            if i % 3 == 0:
                want[sk.replace("_", "-")] += 1
                body = f"info: [agent] invoking skill:{sk} s{i}"
            else:
                body = rng.choice(["info: [nim] request tokens=12", "error(gateway): failed 3 times", "Warn: slow 2"])
            fh.write(f"Nov 20 10:{i // 600 % 60:02d}:{i // 10 % 60:02d} gw01 zeptoclaw-gateway[{pid}]: {body}\n")
            if i % 5 == 0:
                fh.write(f"Nov 20 10:00:00 gw01 sshd[{i}]: Accepted publickey for ops\n")
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    assert _engine(c).startswith("engine: native (C scanner, 1 thread; journalctl's short format")
    assert c.skill_counts == dict(want) and len(c.restarts) == 1 and c.buckets.empty
    assert_same_in_ranges(path, c, monkeypatch, 3, unit="zeptoclaw-gateway", bucket="1min")
    with open(path, "ab") as fh:  # Latin-1 text: read as read_short_file decodes it, by the C scanner too
        fh.write(b"Nov 20 11:00:00 gw01 zeptoclaw-gateway[4101]: error: caf\xe9 failed\n")
    bad = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    assert _engine(bad).startswith("engine: native (C scanner, ") and "journalctl's short format" in _engine(bad)
    assert "error: caf\ufffd failed" in set(bad.top_errors["message"])


@needs_native
@pytest.mark.parametrize("raw", [False, True])
def test_banner_spam_is_counted_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: bool) -> None:
    """More startup banners than MAX_BANNERS (pid-less short-iso lines, or raw stderr lines): the first ones are
    kept, the rest counted in a note; same in both engines and in many ranges."""
    from zcnb.logs.scan import MAX_BANNERS

    path = tmp_path / "banners.log"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(MAX_BANNERS + 77):
            stamp = "" if raw else f"2026-11-20T10:{i // 3000 % 60:02d}:{i // 50 % 60:02d}+0000 gw01 zeptoclaw-gateway: "
            fh.write(f"{stamp}Main Token: [REDACTED]\n")
    c = assert_same(path, unit=None if raw else "zeptoclaw-gateway", bucket="1min")
    assert len(c.restarts) == MAX_BANNERS - 1
    assert any(note.startswith("77 more startup banner(s) after the first 10,000") for note in c.notes)
    assert_same_in_ranges(path, c, monkeypatch, 3, unit=None if raw else "zeptoclaw-gateway", bucket="1min")


@needs_native
def test_error_lines_alike_but_for_their_numbers(tmp_path: Path) -> None:
    """Error lines that differ only in their digits share a cache slot in the native engine (digits masked, a '0'
    kept apart): their groups must still be what normalising each line gives. Templates where a digit's value
    matters ("0x1f" is one number, "5x1f" two), decimals, hex with letters, a flag word starting inside a hex
    number ("0xalloc"), digits at the edges: the same summary in both engines."""
    rng = random.Random(3)
    templates = [
        "error: upstream returned {d} after {n}ms", "error: at {h} freed", "error: at {d}x1f freed",
        "error: at 0x{x}lloc done", "warning: 0x{x} alloc {n}", "error: {n}.{n} vs {n}.x vs .{n}", "error: {n}",
        "error({d}x): {h}{h}", "warning: unauthorized {n} from 10.0.{n}.{n}:{n}", "error: 0{n} 00{n} 0x{x}",
        "error: double free 0x{x}DE{n}", "error: caf\u00e9 {n}", "Warn: {d}{d}{d}",
    ]
    path = tmp_path / "errs.log"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(6000):
            body = rng.choice(templates).format(
                d=rng.randrange(10), n=rng.choice([rng.randrange(10), rng.randrange(1000), rng.randrange(10**6)]),
                h=rng.choice(["0x1f", "0x11", "5x1f", "0xAB", "0x"]), x=f"{rng.getrandbits(rng.choice([4, 8, 40])):x}")
            fh.write(f"2026-11-20T10:{i // 600 % 60:02d}:{i // 10 % 60:02d}+0000 gw01 zeptoclaw-gateway[4100]: {body}\n")
    c = assert_same(path, unit="zeptoclaw-gateway", bucket="1min")
    assert len(c.top_errors) > 10 and c.levels["error"] > 4000
