"""Leak reports as the real allocators print them: Zig 0.16's DebugAllocator (the real ZeptoClaw gateway,
captured from the binary built from ../shared/zeptoclaw after 20 token-less requests with two extra headers) and
Zig 0.17's SafeAllocator (src/safe_parse.zig, built with the project's ziglang 0.17.1), plus streaming bounds."""

from __future__ import annotations

from pathlib import Path

from zcnb.cli import main
from zcnb.leaks.parse import parse_leak_file, parse_leak_report

DATA = Path(__file__).parent / "data" / "leakreports"


def test_zig016_real_gateway_report_with_std_only_records_attributed_to_parse_request() -> None:
    r = parse_leak_file(DATA / "zig016_real_gateway.txt")
    assert r.tools == ("zig",) and r.n_records == 142 and not r.truncated
    assert all(x.bytes is None for x in r.records)  # 0.16 prints no sizes
    std_only = [x for x in r.records if x.std_only]
    assert len(std_only) == 20 and all(x.frames[-1].function == "putContext" for x in std_only)
    assert {x.site.function for x in std_only if x.site} == {"parseRequest"}  # attributed, not "allocate"
    top = r.top_sites()
    assert [(s.function, s.records, s.attributed) for s in top] == [("parseRequest", 140, 20), ("init", 2, 0)]
    assert top[0].file and top[0].file.endswith("src/gateway/http_server.zig") and top[0].lines == (190,)
    assert top[0].via == ("std putContext",) and "20 attributed: trace ends in std putContext" in top[0].label
    assert any("attributed to parseRequest" in n for n in r.notes)
    assert "attributed" in r._repr_html_() and "20 attributed" in r.summary


def test_zig017_safe_allocator_has_sizes_and_the_hash_map_goes_to_parse_request() -> None:
    r = parse_leak_file(DATA / "zig017_safe_parse.txt")
    assert r.n_records == 10 and r.tools == ("zig",)
    assert sorted(x.bytes or 0 for x in r.records) == [1, 1, 1, 1, 3, 3, 4, 4, 288, 288]
    assert r.records[0].address == "0x7fc377540750"
    assert r.leaked_bytes == 594
    (site,) = r.top_sites()
    assert (site.function, site.records, site.attributed, site.bytes) == ("parseRequest", 10, 2, 594)


def test_unattributable_std_only_records_stay_apart_and_say_so() -> None:
    text = (DATA / "zig016_real_gateway.txt").read_text()
    # drop every program frame that calls put(): the 20 hash-map records have no candidate call site left
    lines = text.splitlines(keepends=True)
    out, skip = [], 0
    for line in lines:
        if skip:
            skip -= 1
            continue
        if ".zig:" in line and "http_server.zig:190" in line:
            skip = 2
            continue
        out.append(line)
    r = parse_leak_report("".join(out))
    names = {s.function for s in r.top_sites()}
    assert "allocate" in names and any("stay unattributed" in n for n in r.notes)


def test_records_capped_totals_cover_everything(tmp_path: Path) -> None:
    one = (DATA / "zig016_real_gateway.txt").read_text()
    big = tmp_path / "big.txt"
    with big.open("w") as fh:
        for _ in range(30):
            fh.write(one)
    r = parse_leak_file(big, max_records=100)
    assert r.n_records == 30 * 142 and len(r.records) == 100
    assert r.totals["leaked"]["records"] == 30 * 142
    assert r.top_sites()[0].records == 30 * 140 and r.top_sites()[0].attributed == 600
    assert any("first 100 kept" in n for n in r.notes)
    d = r.to_dict()
    assert d["records_total"] == 4260 and d["records_kept"] == 100


def test_streamed_file_equals_in_memory_text_including_a_cut_end(tmp_path: Path) -> None:
    text = (DATA / "zig016_real_gateway.txt").read_text()
    for cut in (len(text), len(text) - 37, len(text) // 2):
        f = tmp_path / f"cut{cut}.txt"
        f.write_text(text[:cut])
        a, b = parse_leak_file(f), parse_leak_report(text[:cut])
        assert (a.n_records, a.truncated, a.totals, a.top_sites()) == (b.n_records, b.truncated, b.totals, b.top_sites())


def test_cli_table_says_attributed(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["leaks", str(DATA / "zig016_real_gateway.txt")]) == 0
    out = capsys.readouterr().out
    assert "parseRequest" in out and "20 attributed: trace ends in std putContext" in out
