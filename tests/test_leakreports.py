"""Parser tests on real leak reports committed as fixtures (made by gcc ASan/LSan, valgrind,
massif and Zig 0.17 from the sources in tests/data/leakreports/src; see docs/leakreports.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcnb.cli import main
from zcnb.exceptions import LeakReportError, ZcnbError
from zcnb.incident import bundled_sample_dir
from zcnb.leaks.massif import parse_massif, parse_massif_file
from zcnb.leaks.parse import Frame, is_runtime_frame, parse_leak_file, parse_leak_report

DATA = Path(__file__).parent / "data" / "leakreports"


def _sites(report):  # function -> (bytes, blocks, records)
    return {s.function: (s.bytes, s.blocks, s.records) for s in report.top_sites()}


def test_asan_exact() -> None:
    r = parse_leak_file(DATA / "asan_leaky.txt")
    assert r.recognized and not r.truncated and r.tools == ("asan",)
    assert [(x.kind, x.bytes, x.blocks) for x in r.records] == [("direct", 300, 3), ("direct", 16, 1), ("indirect", 32, 1)]
    assert r.totals["direct"] == {"bytes": 316, "blocks": 4, "records": 2}
    assert r.leaked_bytes == 348 == r.tool_summary["asan"]["leaked"]["bytes"]
    assert _sites(r) == {"make_buffer": (300, 3, 1), "make_node": (48, 2, 2)}
    f = r.records[0].frames[1]
    assert (f.function, Path(f.file or "").name, f.line) == ("make_buffer", "leaky.c", 23)
    assert is_runtime_frame(r.records[0].frames[0])  # __interceptor_malloc


def test_lsan_is_told_apart() -> None:
    r = parse_leak_file(DATA / "lsan_leaky.txt")
    assert r.tools == ("lsan",) and {x.tool for x in r.records} == {"lsan"}
    assert r.leaked_bytes == 348


def test_valgrind_all_kinds_match_leak_summary() -> None:
    r = parse_leak_file(DATA / "valgrind_leaky.txt")
    assert r.tools == ("valgrind",) and not r.truncated
    summary = r.tool_summary["valgrind"]
    for kind in ("definitely", "indirect", "possibly", "still-reachable"):
        assert r.totals[kind]["bytes"] == summary[kind]["bytes"], kind
        assert r.totals[kind]["blocks"] == summary[kind]["blocks"], kind
    assert summary["definitely"] == {"bytes": 316, "blocks": 4}
    node = next(x for x in r.records if x.kind == "definitely" and x.bytes == 16)
    assert node.indirect_bytes == 32 and node.site and node.site.function == "make_node"
    assert _sites(r)["make_buffer"] == (364, 4, 2)  # 300 definitely + 64 possibly
    reach = r.top_sites(include_reachable=True)
    assert sum(s.bytes or 0 for s in reach) == 316 + 32 + 64 + 48


def test_zig_gateway_report_and_journal_copy_agree() -> None:
    raw = parse_leak_file(DATA / "zig_gateway.txt")
    jr = parse_leak_file(DATA / "zig_gateway_journal.txt")  # written by systemd-journal-remote, read by journalctl
    for r in (raw, jr):
        assert r.tools == ("zig",) and not r.truncated and len(r.records) == 4
        assert all(x.kind == "leaked" and x.bytes is None and x.complete for x in r.records)
        assert r.totals["leaked"] == {"bytes": None, "blocks": 4, "records": 4}
        assert _sites(r) == {"loadConfig": (None, 3, 3), "parseHeaders": (None, 1, 1)}
    assert [x.frames for x in raw.records] == [x.frames for x in jr.records]
    f = raw.records[2].frames[2]
    assert (f.function, f.file, f.line, f.column, f.address) == (
        "handleRequest", "/tmp/zeptoclaw/src/gateway/http.zig", 12, 37, "0x11e459d")


def test_zig_lines_as_separate_entries_and_gpa_scope() -> None:
    text = (DATA / "zig_gateway.txt").read_text().replace("error(DebugAllocator)", "error(gpa)")
    r = parse_leak_report(text.splitlines())
    assert r.recognized and len(r.records) == 4


def test_zig_double_free_size_mismatch_and_zig_test() -> None:
    df = parse_leak_file(DATA / "zig_double_free.txt")
    assert [x.kind for x in df.records] == ["double-free"] and df.errors
    rec = df.records[0]
    assert rec.site and rec.site.function == "main" and rec.site.line == 14
    assert [f.function for f in rec.free_frames][:2] == ["releaseSession", "main"] and rec.free_frames[1].line == 16
    sm = parse_leak_file(DATA / "zig_size_mismatch.txt")
    assert [(x.kind, x.bytes) for x in sm.records] == [("size-mismatch", 40)] and "36" in sm.records[0].note
    assert sm.top_sites() == ()  # allocator errors are not leak sites
    zt = parse_leak_file(DATA / "zig_test_leak.txt")
    assert zt.tests_leaked == 1 and [(x.bytes, x.site.function if x.site else None) for x in zt.records] == [
        (48, "buildReply")]


def test_bundled_sample_is_a_real_zig_report() -> None:
    r = parse_leak_file(bundled_sample_dir() / "leak_report.txt")
    assert r.recognized and {s.function for s in r.top_sites()} == {"loadConfig", "parseHeaders"}
    assert "handleRequest" in {f.function for x in r.records for f in x.frames}


@pytest.mark.parametrize("name", ["asan_leaky.txt", "valgrind_leaky.txt", "zig_gateway.txt"])
def test_cut_reports_keep_complete_records(name: str) -> None:
    full_text = (DATA / name).read_text()
    full = parse_leak_report(full_text)
    for frac in (0.1, 0.3, 0.45, 0.55, 0.7, 0.8):
        cut = parse_leak_report(full_text[: int(len(full_text) * frac)])
        assert cut.truncated, (name, frac)
        done = [x for x in cut.records if x.complete]
        assert [(x.kind, x.bytes, x.blocks, x.frames) for x in done] == [
            (x.kind, x.bytes, x.blocks, x.frames) for x in full.records[: len(done)]]
        assert len(cut.records) <= len(full.records)


def test_not_a_report_and_bad_types() -> None:
    r = parse_leak_report("info: [agent] tool skill args={}\nhello\n")
    assert not r.recognized and r.records == () and "no leak report" in r.summary
    assert parse_leak_report(b"\xff\xfe\x00garbage").recognized is False
    with pytest.raises(LeakReportError, match="cannot read a leak report"):
        parse_leak_report(42)  # type: ignore[arg-type]
    with pytest.raises(LeakReportError, match="does not exist"):
        parse_leak_file(DATA / "nope.txt")
    with pytest.raises(LeakReportError, match="no massif snapshot"):
        parse_massif("desc: x\n")


_pieces = st.sampled_from([
    "Direct leak of 5 byte(s) in 1 object(s) allocated from:", "    #0 0x1 in f a.c:1:2", "    #1 0x2 (lib.so+0x3)",
    "==1==ERROR: LeakSanitizer: detected memory leaks", "SUMMARY: AddressSanitizer: 5 byte(s) leaked in 1 allocation(s).",
    "==9== 1,000 bytes in 2 blocks are definitely lost in loss record 1 of 2", "==9==    by 0x1: g (b.c:3)",
    "==9== LEAK SUMMARY:", "error(gpa): memory address 0xab leaked:", "/a/b.zig:1:2: 0x10 in h (exe)", "    x", "    ^",
    "error(DebugAllocator): Allocation size 9 bytes does not match free size 3. Allocation: ", " Free: ",
    "Double free detected. Allocation:", "2 tests leaked memory.", "", "2026-11-28T10:00:00+0000 h zg[1]: ",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=40)), max_size=40), st.binary(max_size=200))
def test_parser_never_crashes(lines: list[str], junk: bytes) -> None:
    for inp in ("\n".join(lines), junk, lines):
        r = parse_leak_report(inp)
        json.dumps(r.to_dict())
        assert isinstance(r._repr_html_(), str) and isinstance(r.summary, str)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_massif_parser_result_or_zcnb_error(data: bytes) -> None:
    text = (DATA / "massif_grows.out").read_bytes()[:2000] + data
    try:
        parse_massif(text)
    except ZcnbError as exc:
        assert str(exc)


def test_massif_peak_and_growth_by_site() -> None:
    m = parse_massif_file(DATA / "massif_grows.out")
    assert m.peak_bytes == max(s.total_bytes for s in m.snapshots) >= 25 * 2**20
    g = {s.function: s.growth_bytes for s in m.growth_sites}
    assert g["grow_cache"] == 20 * 2**20  # 20 ticks x 1 MiB, all mapped after the first detailed snapshot
    assert g["keep_session"] > 0 and g["keep_session"] % (256 * 1024) == 0
    assert m.growth_sites[0].function == "grow_cache" and m.peak_sites[0].function == "grow_cache"
    at_peak = next(s for s in m.snapshots if s.index == m.peak_snapshot)
    assert sum(s.bytes for s in m.peak_sites) == at_peak.heap_bytes  # every byte attributed once
    assert "grow_cache" in m._repr_html_() and json.dumps(m.to_dict())


def test_frame_classification() -> None:
    assert is_runtime_frame(Frame(function="malloc", object="/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so"))
    assert is_runtime_frame(Frame(function="dupe__func_109", file="/x/lib/std/mem/Allocator.zig", line=1))
    assert not is_runtime_frame(Frame(function="handleRequest", file="/src/gateway/http.zig", line=3))


def test_html_and_dict() -> None:
    r = parse_leak_file(DATA / "valgrind_leaky.txt")
    html = r._repr_html_()
    assert "<table>" in html and "make_buffer" in html and "364 B" in html
    d = json.loads(json.dumps(r.to_dict()))
    assert d["top_sites"][0]["function"] == "make_buffer" and d["totals"]["possibly"]["bytes"] == 64


def test_cli_report_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["leaks", str(DATA / "asan_leaky.txt"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "make_buffer" in text and "316 bytes" in text
    assert json.loads(out.read_text())["leaked_bytes"] == 348 and (out.stat().st_mode & 0o777) == 0o600
    assert main(["leaks", str(DATA / "massif_grows.out")]) == 0
    assert "grow_cache" in capsys.readouterr().out
    notes = tmp_path / "n.txt"
    notes.write_text("just a log line\n")
    assert main(["leaks", str(notes)]) == 1
    assert main(["leaks", str(tmp_path / "missing.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
