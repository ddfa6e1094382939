"""Malformed logs and journal exports: each has one stated outcome, the same in both engines, never a traceback.

The corpus is tests/data/logs/bad/ (written by its make.py): JSON nested deeper than ``json`` reads, unparseable
export lines, MESSAGE as byte arrays with invalid UTF-8, times out of range (year 9999, 0000, before 1970,
from 2200 on) in ``__REALTIME_TIMESTAMP`` and in short-iso prefixes, malformed journal export entries, binary
data. Lines of 100 MB without a newline and a real token logged as a skill name are made here. ``zcnb logs``
exits 2 with a hint where the input gives nothing to summarise. A hypothesis test feeds arbitrary bytes (also
behind each format's opening bytes) to both engines: ZcnbError or identical summaries, nothing else.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcnb.exceptions import LogFormatError, ZcnbError
from zcnb.logs import LogSummary, read_log_file, summarize_logs
from zcnb.logs.journal import read_journal_json
from zcnb.logs.message import ReadStats
from zcnb.logs.native import native_status
from zcnb.redact import Redactor

BAD = Path(__file__).parent / "data" / "logs" / "bad"
NATIVE, WHY = native_status()
ENGINES = ["python", "native"] if NATIVE else ["python"]
UNREADABLE = "unreadable line(s) or entries skipped"
OUT_OF_RANGE = "with a time that is not a date or out of range (before 1970 or from 2200 on): counted without a time"


def _plain(s: LogSummary) -> dict[str, Any]:
    d = s.to_dict()
    d["notes"] = [n for n in d["notes"] if not n.startswith("engine:")]
    return d


def both(path: Path, **kw: Any) -> LogSummary:
    """Both engines on ``path``: the same summary (the engine note aside); the Python engine's is returned."""
    py = summarize_logs(path, engine="python", **kw)
    if NATIVE:
        c = summarize_logs(path, engine="native", **kw)
        assert _plain(c) == _plain(py)
        assert c.buckets.equals(py.buckets)
    return py


def _note(s: LogSummary, part: str) -> str:
    return next(n for n in s.notes if part in n)


def _errors(s: LogSummary) -> dict[str, int]:
    return {str(r.message): int(r.count) for r in s.top_errors.itertuples()}


# --- the corpus, one exact outcome per file ---------------------------------------------------------------

def test_nested_json_is_one_unreadable_line_and_the_read_goes_on() -> None:
    """3,000 nested arrays: json raises RecursionError; the line is counted as unreadable, the others are read."""
    s = both(BAD / "nested.jsonl", bucket="1s")
    assert s.n_lines == 2 and s.unreadable == 1 and s.bad_times == 0
    assert s.skill_counts == {"web-search": 1} and _errors(s) == {"error: [nim] 503 upstream": 1}
    assert _note(s, UNREADABLE).startswith("1 unreadable")
    stats = ReadStats()
    entries = list(read_journal_json(BAD / "nested.jsonl", stats=stats))
    assert len(entries) == 2 and stats.unreadable == 1


def test_unparseable_export_lines_are_counted() -> None:
    """A cut line, plain text, a JSON array, a JSON string and an object with trailing data: 5 unreadable lines
    (the blank line is not one); the two good entries are read."""
    s = both(BAD / "unparseable.jsonl", bucket="1s")
    assert s.n_lines == 2 and s.unreadable == 5
    assert s.levels == {"error": 0, "warning": 1, "info": 1, "debug": 0, "none": 0}
    assert _note(s, UNREADABLE).startswith("5 unreadable")
    assert s.to_dict()["unreadable"] == 5


def test_byte_array_messages_with_invalid_utf8() -> None:
    """MESSAGE as a byte array (journalctl's form for non-UTF-8): decoded with U+FFFD, levels and skills kept."""
    s = both(BAD / "bytes_message.jsonl", bucket="1s")
    assert s.n_lines == 3 and s.unreadable == 0
    assert _errors(s) == {"error: \ufffd\ufffd bad": 1, "warning: caf\u00e9": 1}
    assert s.skill_counts == {"calendar": 1}
    messages = [e.message for e in read_log_file(BAD / "bytes_message.jsonl")]
    assert messages == ["error: \ufffd\ufffd bad", "info: [agent] invoking skill:calendar \ufffd(", "warning: caf\u00e9"]


def test_journal_times_out_of_range() -> None:
    """Year 9999, year 10000, 20 digits, -1 and 2200-01-01 are out of range (5 entries counted without a time);
    one microsecond before 2200 is a time; a text that is no number is no time (not counted as out of range)."""
    s = both(BAD / "times_out_of_range.jsonl", bucket="1s")
    assert s.n_lines == 8 and s.bad_times == 5 and s.unreadable == 0
    assert s.levels["error"] == 5 and s.skill_counts == {"a": 1, "b": 1}
    assert s.start is not None and s.start.year == 2026
    assert s.end is not None and s.end.isoformat() == "2199-12-31T23:59:59.999999+00:00"
    assert _note(s, OUT_OF_RANGE).startswith("5 line(s)")
    other = both(BAD / "times_out_of_range.jsonl", unit="other-unit")  # counted for the unit's entries only
    assert other.n_lines == 0 and other.bad_times == 0
    stamps = [e.timestamp for e in read_log_file(BAD / "times_out_of_range.jsonl")]
    assert [t is None for t in stamps] == [False, True, True, True, True, True, False, True]


def test_short_iso_times_out_of_range() -> None:
    """9999-12-31, 0000-01-01, 2026-13-45, 1969-12-31 and 2200-01-01: the lines count (their errors too), without
    a time; before, lines with an impossible date were dropped and a year-9999 line stretched the span."""
    s = both(BAD / "times_out_of_range.log", bucket="1s")
    assert s.n_lines == 8 and s.bad_times == 5
    assert s.levels["error"] == 5 and s.skill_counts == {"a": 2, "b": 1}
    assert s.start is not None and s.start.isoformat() == "2026-11-28T10:00:00+00:00"
    assert s.end is not None and s.end.isoformat() == "2199-12-31T23:59:59+00:00"
    entries = list(read_log_file(BAD / "times_out_of_range.log"))
    assert len(entries) == 8 and sum(e.timestamp is None for e in entries) == 5


def test_export_times_out_of_range() -> None:
    s = both(BAD / "times_out_of_range.export", bucket="1s")
    assert s.n_lines == 3 and s.bad_times == 2 and s.levels["error"] == 2


def test_malformed_export_entries_are_skipped_and_counted() -> None:
    """A line neither NAME=value nor a binary field, a payload not followed by a newline, a size whose top byte
    is not 0 and a cut last entry: 4 unreadable entries; extra empty lines are ignored; 3 entries read. (Before,
    the first of these refused the whole file.)"""
    s = both(BAD / "malformed.export", bucket="1s")
    assert s.n_lines == 3 and s.unreadable == 4
    assert _errors(s) == {"error: kept": 1, "warning: kept too": 1} and s.skill_counts == {"a": 1}


@pytest.mark.parametrize("name,share", [("nul.bin", "100%"), ("elf_like.bin", "53%"), ("../garbage.bin", "52%")])
def test_binary_data_is_refused(name: str, share: str) -> None:
    path = BAD / name
    for engine in ENGINES:
        with pytest.raises(LogFormatError) as err:
            summarize_logs(path, engine=engine)
        assert f"is not a log: {share} of its first" in str(err.value)
        assert "journalctl -o short-iso > FILE" in str(err.value)
    with pytest.raises(LogFormatError, match="is not a log"):
        list(read_log_file(path))


def test_a_few_nul_bytes_in_a_text_log_are_text() -> None:
    s = both(BAD / "text_with_nul.log", bucket="1s")
    assert s.n_lines == 40 and s.skill_counts == {"web-search": 40} and s.unreadable == 0


def test_corpus_files_are_what_make_py_writes(tmp_path: Path) -> None:
    """The committed files are the script's output (a changed case must be regenerated, not hand-edited)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_bad", BAD / "make.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.HERE = tmp_path
    mod.main()
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in BAD.iterdir() if p.suffix != ".py")
    for name in made:
        assert (tmp_path / name).read_bytes() == (BAD / name).read_bytes(), name


# --- lines of 100 MB without a newline ------------------------------------------------------------------

def _huge_line(path: Path, *, prefix: bytes, size: int = 100 << 20) -> None:
    with open(path, "wb") as fh:
        fh.write(b"2026-11-28T10:00:00+00:00 h zeptoclaw-gateway[1]: info: skill:before\n")
        fh.write(prefix)
        block = b"x" * (1 << 20)
        for _ in range(size >> 20):
            fh.write(block)


def test_hundred_megabyte_line_without_newline_is_cut(tmp_path: Path) -> None:
    """Its first 4 MiB are read (the C scanner gives way to the Python engine, which cuts it); one cut line."""
    path = tmp_path / "huge.log"
    _huge_line(path, prefix=b"2026-11-28T10:00:01+00:00 h zeptoclaw-gateway[1]: error: skill:big ")
    s = both(path, bucket="1s")
    assert s.n_lines == 2 and s.cut_lines == 1 and s.levels["error"] == 1
    assert s.skill_counts == {"before": 1, "big": 1}
    assert "1 line(s) longer than 4 MiB: only their first 4 MiB read" in s.notes
    stats = ReadStats()
    lengths = [len(e.message) for e in read_log_file(path, stats=stats)]
    assert stats.cut_lines == 1 and lengths[0] == len("info: skill:before") and lengths[1] < 1 << 20


def test_hundred_megabyte_json_line_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    good = json.dumps({"__REALTIME_TIMESTAMP": "1795900000000000", "MESSAGE": "info: skill:before"}) + "\n"
    with open(path, "wb") as fh:
        fh.write(good.encode())
        fh.write(b'{"MESSAGE": "')
        for _ in range(100):
            fh.write(b"y" * (1 << 20))
    s = both(path, bucket="1s")
    assert s.n_lines == 1 and s.unreadable == 1 and s.skill_counts == {"before": 1}


# --- a real token logged as a skill name ----------------------------------------------------------------

def _token_log(path: Path, token: str) -> None:
    pre = "2026-11-28T10:00:0{}+00:00 h zeptoclaw-gateway[7]: "
    path.write_text(pre.format(0) + f"info: [agent] invoking skill:{token}\n"
                    + pre.format(1) + f'info: [agent] tool skill args={{"name":"{token}","command":"/x"}}\n'
                    + pre.format(2) + f"info: [agent] tool {token} args={{}}\n"
                    + pre.format(3) + f"debug: [gateway] GET /health?token={token}\n"
                    + pre.format(4) + "info: [agent] invoking skill:Git_Workflow\n")


def _forms_of(token: str) -> list[str]:
    return [token, token.lower(), token.lower().replace("_", "-"), token.replace("_", "-")]


def test_token_as_skill_name_is_redacted_before_it_is_lowered(tmp_path: Path) -> None:
    """The gateway token (a real one: mixed case, with _ and -) as skill:NAME, as the tool form's "name", as a tool
    and in a request path: no form of it (as written, lowered, hyphenated) in the summary, its buckets or its
    JSON, in either engine; the redacted name keeps the mask as is, other skills stay canonical."""
    token = "Zc_" + secrets.token_urlsafe(24) + "-Q"
    path = tmp_path / "token.log"
    _token_log(path, token)
    red = Redactor.create(secrets=[token])
    for engine in ENGINES:
        s = summarize_logs(path, engine=engine, redact=red, bucket="1min")
        shown = json.dumps(s.to_dict()) + s.buckets.to_csv() + repr(s) + s._repr_html_() + s.runbook_table()
        assert not any(form in shown for form in _forms_of(token)), engine
        assert s.skill_counts == {"[REDACTED]": 1, "git-workflow": 1}
        assert s.skills.set_index("skill").loc["[REDACTED]", "token_form"] == 1
        assert s.skills.set_index("skill").loc["[REDACTED]", "tool_form"] == 1
        assert "[REDACTED]" in s.tools["tool"].tolist() and "skill:[REDACTED]" in s.buckets.columns


def test_cli_never_prints_the_token_logged_as_a_skill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    token = "Zc_" + secrets.token_urlsafe(24)
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", token)
    path = tmp_path / "token.log"
    _token_log(path, token)
    out = tmp_path / "summary.json"
    assert main(["logs", "--text", str(path), "--json", str(out)]) == 0
    printed = capsys.readouterr()
    text = printed.out + printed.err + out.read_text()
    assert not any(form in text for form in _forms_of(token))
    assert "      1 skill:[REDACTED]" in printed.out


# --- zcnb logs: counts shown, exit 2 where the input is unusable ------------------------------------------

def test_cli_shows_what_was_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    assert main(["logs", "--json-export", str(BAD / "unparseable.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "Not read as written: 5 unreadable line(s)/entries skipped, 0 time(s) out of range" in out
    assert "note: 5 unreadable line(s) or entries skipped" in out
    assert main(["logs", "--text", str(BAD / "times_out_of_range.log")]) == 0
    assert "5 time(s) out of range (counted without a time)" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--text", str(BAD / "nul.bin")], "is not a log: 100% of its first 4096 bytes are binary data"),
    (["--text", str(BAD.parent / "empty.log")], "no log lines of zeptoclaw-gateway.service in"),
    (["--text", str(BAD / "times_out_of_range.log"), "--unit", "other"], "no log lines of other.service in"),
])
def test_cli_unusable_input_exits_2_with_a_hint(args: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    assert main(["logs", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and " -- " in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_cli_export_with_only_unreadable_lines_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    path = tmp_path / "all_bad.jsonl"
    path.write_text('{"MESSAGE": "cut\nnot json\n[1]\n')
    assert main(["logs", "--json-export", str(path)]) == 2
    assert "no log lines of zeptoclaw-gateway.service in " + str(path) + "; 3 unreadable" in capsys.readouterr().err


# --- hypothesis: arbitrary bytes, alone and behind each format's opening -----------------------------------

_OPENINGS = [b"", b"__CURSOR=s\n__REALTIME_TIMESTAMP=1795900000000000\nMESSAGE=",
             b'{"__REALTIME_TIMESTAMP": "1795900000000000", "MESSAGE": "',
             b"2026-11-28T10:00:00+00:00 h zeptoclaw-gateway[1]: ", b"Dec 04 16:34:24 h zeptoclaw-gateway[1]: "]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opening=st.sampled_from(_OPENINGS), body=st.binary(max_size=3000), repeat=st.integers(1, 3),
       unit=st.sampled_from([None, "zeptoclaw-gateway"]))
def test_property_arbitrary_bytes(tmp_path: Path, opening: bytes, body: bytes, repeat: int, unit: str | None) -> None:
    """Both engines: the same ZcnbError (message and all), or the same summary; read_log_file and the entry path
    raise nothing but ZcnbError."""
    path = tmp_path / "any.log"
    path.write_bytes((opening + body) * repeat)
    results: list[dict[str, Any] | str] = []
    for engine in ENGINES:
        try:
            s = summarize_logs(path, engine=engine, unit=unit, bucket="1s")
        except ZcnbError as exc:
            results.append(f"{type(exc).__name__}: {exc}")
            continue
        json.dumps(s.to_dict(), default=str)
        results.append(_plain(s))
    assert all(r == results[0] for r in results)
    try:
        entries = list(read_log_file(path))
        summarize_logs(entries, bucket="1s")
    except ZcnbError:
        assert isinstance(results[0], str)


def test_exporter_counts_never_label_a_token_logged_as_a_skill() -> None:
    """The exporter's counters share the summary's name rule: with its redactor, the token is no label."""
    from zcnb.monitor.logcount import LogCounts

    token = "Zc_" + secrets.token_urlsafe(24)
    counts = LogCounts(redact=Redactor.create(secrets=[token]))
    counts.feed([f"info: [agent] invoking skill:{token}".encode(),
                 f'info: [agent] tool skill args={{"name":"{token}"}}'.encode(),
                 f"info: [agent] tool {token} args={{}}".encode(), b"info: [agent] invoking skill:Git_Workflow"])
    snap = counts.snapshot()
    assert snap.skills == {"other": 1, "git-workflow": 1} and snap.tools == {"skill": 1, "other": 1}
    assert not any(form in repr(snap) for form in _forms_of(token))
