"""Log parsing and summaries: text logs (short-iso and raw), the fast chunk path vs the per-entry path,
the runbook's own pipeline as the reference, and the bad-input corpus."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcnb.exceptions import ConfigError, LogFormatError, ZcnbError
from zcnb.logs import bucket_seconds, parse_message, read_log_file, summarize_logs
from zcnb.logs import chunks as logchunks
from zcnb.logs import entries as logs
from zcnb.logs.skills import canonical_skill

DATA = Path(__file__).parent / "data" / "logs"
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def make_log(path: Path, *, n: int = 4000, seed: int = 1, mixed: bool = False, restart_at: int | None = None,
             forms: str = "both") -> Counter[str]:
    """Write a short-iso log; return the true per-skill invocation counts of the gateway unit."""
    rng = random.Random(seed)
    truth: Counter[str] = Counter()
    lines = []
    pid = 100
    for i in range(n):
        ts = (T0 + timedelta(seconds=i * 0.37)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        if restart_at is not None and i == restart_at:
            pid = 101
        pre = f"{ts} host zeptoclaw-gateway[{pid}]: "
        r = rng.random()
        if r < 0.15:
            name = rng.choice(["git_workflow", "web-search", "Code_Review"])
            truth[canonical_skill(name)] += 1
            if forms in ("both", "tool"):
                lines.append(pre + f'info: [agent] tool skill args={{"name":"{name}","command":"/x"}}')
            if forms in ("both", "token"):
                lines.append(pre + f"info: [agent] invoking skill:{name.replace('_', '-')}")
        elif r < 0.22:
            lines.append(pre + f'info: [agent] tool shell args={{"cmd":"ls {i}"}}')
        elif r < 0.25:
            lines.append(pre + "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header")
        elif r < 0.27:
            lines.append(pre + f"error: [nim] upstream returned 503 after {rng.randint(1, 999)}ms")
        elif r < 0.28:
            lines.append(pre + "info: [heartbeat] ok")
        else:
            lines.append(pre + f"info: [whatsapp] message {i} delivered")
        if mixed and rng.random() < 0.05:
            lines.append(f"{ts} host whatsapp-responder[7]: info: [agent] tool skill args={{\"name\":\"git_workflow\"}} skill:git-workflow")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return truth


def test_parse_message_levels_scopes_tags() -> None:
    assert parse_message("info: [agent] tool skill args={}") == ("info", None, "agent", "tool skill args={}")
    assert parse_message("error(gpa): memory address 0x1 leaked:")[:2] == ("error", "gpa")
    assert parse_message("warning(gateway): unauthorized GET /health")[:3] == ("warning", "gateway", None)
    assert parse_message("Main Token: x")[0] == "none"
    # the real gateway's lines without a Zig level keep a level of their own
    assert parse_message("Connection error: error.RateLimitExceeded") == (
        "error", None, None, "Connection error: error.RateLimitExceeded")
    assert parse_message("thread 4242 panic: reached unreachable code")[0] == "error"
    assert parse_message("panic: integer overflow")[0] == "error"
    assert parse_message("Error: Failed to load configuration")[0] == "error"
    assert parse_message("Warn: MOLTBOOK_API_KEY not set (EnvironmentVariableNotFound)")[0] == "warning"
    assert parse_message("Warning: x")[0] == "warning"
    for plain in ("  Main Token: x", "==============================", "Gateway server listening on .{ .ip4 = .{} }",
                  "/src/gateway/http_server.zig:102:33: 0x12827ef in start (root.zig)", "                ^",
                  "stack trace:", "(additional stack frames may have been skipped...)", "connection error: x",
                  "Connection Error: x", "thread x panic: y", "Warn:x", ""):
        assert parse_message(plain)[0] == "none", plain


@pytest.mark.parametrize("bucket,expected", [("1min", 60), ("30s", 30), (5, 5), ("2h", 7200)])
def test_bucket_seconds(bucket: str | int, expected: int) -> None:
    assert bucket_seconds(bucket) == expected


@pytest.mark.parametrize("bucket", ["soon", "0.5s", 0, -3, "0s"])
def test_bad_bucket_is_config_error(bucket: object) -> None:
    with pytest.raises(ConfigError):
        bucket_seconds(bucket)  # type: ignore[arg-type]


@pytest.mark.parametrize("forms", ["both", "tool", "token"])
def test_file_fast_path_matches_entry_path_and_truth(tmp_path: Path, forms: str) -> None:
    path = tmp_path / "g.log"
    truth = make_log(path, forms=forms)
    fast = summarize_logs(path, unit="zeptoclaw-gateway", bucket="30s")
    slow = summarize_logs(read_log_file(path, unit="zeptoclaw-gateway"), unit="zeptoclaw-gateway", bucket="30s")
    assert fast.skill_counts == dict(truth)
    engine_free = [n for n in fast.notes if not n.startswith("engine:")]  # the one note that differs: which engine
    assert fast.to_dict() | {"source": "", "notes": engine_free} == slow.to_dict() | {"source": "", "notes": engine_free}
    assert fast.buckets.equals(slow.buckets)
    skill_cols = [c for c in fast.buckets.columns if c.startswith("skill:")]
    assert int(fast.buckets[skill_cols].to_numpy().sum()) == sum(truth.values())


def test_mixed_units_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    truth = make_log(path, mixed=True, restart_at=2500)
    s = summarize_logs(path, unit="zeptoclaw-gateway.service", bucket="1min")
    assert s.skill_counts == dict(truth)  # whatsapp-responder's skill lines do not count
    assert list(s.restarts["reason"]) == ["pid change"]
    assert (s.restarts.iloc[0]["old_pid"], s.restarts.iloc[0]["new_pid"]) == (100, 101)
    assert s.pids == (100, 101)
    everyone = summarize_logs(path, bucket="1min")  # no unit: every line counts
    assert sum(everyone.skill_counts.values()) > sum(truth.values())


def test_chunk_boundaries_and_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "g.log"
    make_log(path, n=6000, restart_at=3000, mixed=True)
    ref = summarize_logs(path, unit="zeptoclaw-gateway", bucket="10s")
    monkeypatch.setattr(logchunks, "CHUNK", 3001)  # many chunks, cut mid-line
    monkeypatch.setattr(logs, "PARALLEL_MIN_BYTES", 1)
    par = summarize_logs(path, unit="zeptoclaw-gateway", bucket="10s", workers=3)
    assert par.to_dict() | {"source": ""} == ref.to_dict() | {"source": ""}
    assert par.buckets.equals(ref.buckets)


def test_top_errors_grouped_with_numbers_normalised(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    make_log(path)
    s = summarize_logs(path)
    msgs = list(s.top_errors["message"])
    upstream = [m for m in msgs if "upstream" in m]
    assert len(upstream) == 1  # "after 12ms" and "after 999ms" are one message shape
    row = s.top_errors[s.top_errors["message"] == upstream[0]].iloc[0]
    assert row["first_seen"] <= row["last_seen"] and row["count"] > 10
    assert s.requests["unauth"] == s.levels["warning"]


def test_runbook_pipeline_agrees_on_token_form(tmp_path: Path) -> None:
    """The reference is the runbook's real pipeline: grep -oP | sort | uniq -c | sort -nr."""
    if not shutil.which("grep"):
        pytest.skip("grep not installed")
    path = tmp_path / "g.log"
    make_log(path, forms="token")
    grep = subprocess.Popen(["grep", "-oP", "skill:[A-Za-z-]+", str(path)], stdout=subprocess.PIPE)
    srt = subprocess.Popen(["sort"], stdin=grep.stdout, stdout=subprocess.PIPE)
    uniq = subprocess.Popen(["uniq", "-c"], stdin=srt.stdout, stdout=subprocess.PIPE)
    out = subprocess.run(["sort", "-nr"], stdin=uniq.stdout, capture_output=True, check=True).stdout.decode()
    for p in (grep, srt, uniq):
        p.wait()
    ref = {ln.split()[1].split(":", 1)[1].lower(): int(ln.split()[0]) for ln in out.splitlines()}
    s = summarize_logs(path)
    assert s.skill_counts == ref
    assert [ln.split()[0] for ln in s.runbook_table().splitlines()] == [ln.split()[0] for ln in out.splitlines()]


def test_corpus_mixed_invalid_utf8() -> None:
    path = DATA / "mixed_invalid_utf8.log"
    entries = list(read_log_file(path, unit="zeptoclaw-gateway"))
    assert all(e.unit == "zeptoclaw-gateway.service" for e in entries)
    assert any("\ufffd" in e.message for e in entries)
    s = summarize_logs(path, unit="zeptoclaw-gateway")
    assert s.skill_counts == {"git-workflow": 1}
    assert s.allocator.get("error(gpa)") == 1 and s.allocator.get("leak reports") == 1
    assert len(s.restarts) == 1 and s.restarts.iloc[0]["new_pid"] == 101
    assert s.tools.set_index("tool")["count"].to_dict() == {"skill": 1, "shell": 1}


def test_corpus_raw_lines_restarts_from_banner() -> None:
    s = summarize_logs(DATA / "raw_restarts.log")
    assert s.start is None and len(s.buckets) == 0
    assert s.skill_counts == {"web-search": 2}
    assert list(s.restarts["reason"]) == ["startup banner"]
    assert s.allocator == {"error(DebugAllocator)": 1, "leak reports": 1, "error(gpa)": 1, "double free": 1}
    assert s.requests.get("GET /health") == 1
    assert s.alloc_mentions == {"free": 2, "deinit": 1, "alloc": 1}  # "Allocation:" in the double-free line
    entries = list(read_log_file(DATA / "raw_restarts.log"))
    assert entries[0].timestamp is None and entries[0].level == "none"
    assert entries[3].level == "error"  # "Connection error: error.RateLimitExceeded"
    assert all("0123456789abcdef" not in e.message for e in entries)


def test_corpus_garbage_is_refused_and_empty_is_empty() -> None:
    """Random bytes are not a log (they used to give 762 lines of no level); an empty file is an empty summary."""
    with pytest.raises(LogFormatError, match=r"garbage.bin is not a log: 52% of its first 20000 bytes are binary"):
        summarize_logs(DATA / "garbage.bin")
    with pytest.raises(LogFormatError, match="is not a log"):
        list(read_log_file(DATA / "garbage.bin"))
    s = summarize_logs(DATA / "empty.log")
    assert s.n_lines == 0 and s.skill_counts == {} and "no log lines read" in s.notes
    json.dumps(s.to_dict(), default=str)
    assert list(read_log_file(DATA / "empty.log")) == []


def test_one_megabyte_line(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    huge = "info: [agent] tool skill args={\"name\":\"git_workflow\",\"blob\":\"" + "x" * (1 << 20) + "\"}"
    path.write_text(f"2026-11-28T10:00:00+0000 h zeptoclaw-gateway[1]: {huge}\n"
                    f"2026-11-28T10:00:01+0000 h zeptoclaw-gateway[1]: error: after\n")
    s = summarize_logs(path)
    assert s.skill_counts == {"git-workflow": 1} and s.levels["error"] == 1
    assert len(list(read_log_file(path))) == 2


def test_missing_and_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="does not exist"):
        summarize_logs(tmp_path / "nope.log")
    with pytest.raises(LogFormatError, match="is a folder"):
        list(read_log_file(tmp_path))
    with pytest.raises(ConfigError, match="not a LogEntry"):
        summarize_logs([{"MESSAGE": "x"}])  # type: ignore[list-item]


def test_summary_display_and_json(tmp_path: Path) -> None:
    path = tmp_path / "g.log"
    make_log(path, restart_at=100)
    s = summarize_logs(path, unit="zeptoclaw-gateway")
    html = s._repr_html_()
    assert "git-workflow" in html and "Restarts" in html
    d = json.loads(json.dumps(s.to_dict()))
    assert d["skills"][0]["count"] >= d["skills"][-1]["count"] and d["restarts"][0]["new_pid"] == 101


_LINE = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda lvl, body: f"2026-11-28T10:00:0{lvl % 10}+0000 h zeptoclaw-gateway[{lvl}]: {body}".encode(),
              st.integers(0, 99999), st.text(max_size=80)),
    st.sampled_from([b"skill:", b"info: [agent] tool skill args={\"name\":\"", b"error(gpa): ", b"]: error: \xff",
                     b"-- Boot x --", b"2026-13-45T99:99:99+0000 h zeptoclaw-gateway[1]: bad time"]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, max_size=30))
def test_property_never_an_unhandled_exception(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "h.log"
    path.write_bytes(b"\n".join(lines))
    try:
        s = summarize_logs(path, unit="zeptoclaw-gateway", bucket="1s")
        entries = list(read_log_file(path))
        s2 = summarize_logs(entries, bucket="1s")
    except ZcnbError as exc:
        assert str(exc)
        return
    json.dumps(s.to_dict(), default=str)
    json.dumps(s2.to_dict(), default=str)


def test_cli_text_and_json_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    path = tmp_path / "g.log"
    truth = make_log(path, restart_at=50)
    out = tmp_path / "summary.json"
    assert main(["logs", "--text", str(path), "--unit", "zeptoclaw-gateway", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    top = truth.most_common(1)[0]
    assert f"{top[1]:7d} skill:{top[0]}" in text and "Restarts and crashes: 1" in text and "Top errors" in text
    assert json.loads(out.read_text())["skills"][0]["count"] == top[1]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert main(["logs", "--json-export", str(DATA / "journal_bad.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "skill:code-review" in text and "note: 3 unreadable line(s) or entries skipped" in text
    assert main(["logs", "--text", str(tmp_path / "missing.log")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_json_export_honours_since_and_until(capsys: pytest.CaptureFixture[str]) -> None:
    """The window keeps exactly the entries whose __REALTIME_TIMESTAMP falls inside it (counted independently)."""
    from zcnb.cli import main
    from zcnb.incident import bundled_sample_dir

    src = str(bundled_sample_dir() / "journal.jsonl")
    assert main(["logs", "--json-export", src]) == 0
    whole = int(re.search(r": (\d+) lines", capsys.readouterr().out).group(1))  # type: ignore[union-attr]
    assert main(["logs", "--json-export", src, "--since", "1795920602", "--until", "1795920662"]) == 0
    out = capsys.readouterr().out
    part = int(re.search(r": (\d+) lines", out).group(1))  # type: ignore[union-attr]
    with open(src, encoding="utf-8") as fh:
        stamps = [int(json.loads(line)["__REALTIME_TIMESTAMP"]) / 1e6 for line in fh]
    assert whole == len(stamps) and part == sum(1795920602 <= t <= 1795920662 for t in stamps) < whole, (whole, part)


def test_skill_totals_and_scan_messages_for_other_counters() -> None:
    """The exporter-style use: scan_messages over bare lines, then skill_totals (each invocation once)."""
    from zcnb.logs.scan import Acc, scan_messages
    from zcnb.logs.summary import skill_totals

    acc = Acc()
    lines = [b'info: [agent] tool skill args={"name":"git_workflow"}', b"info: [agent] invoking skill:git-workflow",
             b"info: skill:web-search", b"thread 2 panic: reached unreachable code"]
    scan_messages(acc, lines, [None] * len(lines), bucket=None)
    totals, by_bucket = skill_totals(acc)
    assert totals == {"git-workflow": 1, "web-search": 1} and not by_bucket
    assert [c[3] for c in acc.crashes] == ["thread 2 panic: reached unreachable code"] and acc.levels["error"] == 1
    acc2 = Acc()
    scan_messages(acc2, lines[:2] * 3, [60.0] * 6, bucket=60)
    assert skill_totals(acc2) == ({"git-workflow": 3}, {(60, "git-workflow"): 3})


@pytest.mark.parametrize("stamp", ["Nov 20 00:00:0{i}", "2026-11-20T00:00:0{i}+0000"])
def test_host_journal_idents_that_are_no_unit_names(tmp_path: Path, stamp: str) -> None:
    """A whole host's journal holds identifiers that are no unit names ((sd-pam), systemd's helper): they are read
    (as lines of no unit), not refused, in journalctl's short and short-iso forms and as entries."""
    path = tmp_path / "host.log"
    lines = ["gw01 (sd-pam)[123]: pam_unix(systemd-user:session): session opened for user ops",
             "gw01 zeptoclaw-gateway[4100]: info: [agent] invoking skill:calendar",
             "gw01 kernel: audit: type=1400 apparmor=\"DENIED\""]
    path.write_text("".join(f"{stamp.format(i=i)} {line}\n" for i, line in enumerate(lines)))
    every = summarize_logs(path)
    assert every.n_lines == 3 and every.skill_counts == {"calendar": 1}
    assert summarize_logs(path, unit="zeptoclaw-gateway").n_lines == 1
    if stamp.startswith("2026"):
        assert summarize_logs(list(read_log_file(path))).n_lines == 3
