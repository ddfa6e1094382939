"""Journal input: real journal files written by systemd-journal-remote and read back by journalctl --file,
saved JSON exports, the simulated gateway's own log, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcnb.exceptions import ConfigError, LogFormatError, ZcnbError
from zcnb.logs import summarize_logs
from zcnb.logs.journal import (
    JOURNAL_REMOTE,
    export_entry,
    journal_argv,
    read_journal,
    read_journal_json,
    write_journal,
)
from zcnb.units import to_epoch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "logs"
UNIT = "zeptoclaw-gateway.service"
T0 = 1_795_900_000_000_000  # microseconds

needs_journal = pytest.mark.skipif(not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")),
                                   reason="systemd-journal-remote / journalctl not installed")


def _gateway_entries() -> list[dict[str, str | bytes | int]]:
    rows: list[dict[str, str | bytes | int]] = []

    def add(i: int, msg: str | bytes, *, pid: int = 100, unit: str = UNIT, prio: int = 6) -> None:
        rows.append({"__REALTIME_TIMESTAMP": T0 + i * 1_000_000, "_SYSTEMD_USER_UNIT": unit, "_PID": pid,
                     "SYSLOG_IDENTIFIER": unit.removesuffix(".service"), "PRIORITY": prio, "MESSAGE": msg})

    add(0, "Main Token: 0123456789abcdef0123456789abcdef")
    for i in range(1, 31):
        add(i, f'info: [agent] tool skill args={{"name":"{"git_workflow" if i % 3 else "web-search"}"}}')
        add(i, "skill:git-workflow" if i % 3 else "skill:web-search")  # runbook form, same invocation
    add(40, b"error: [nim] bad reply \xff\xfe\xfd", prio=3)  # not UTF-8: binary export field
    add(41, "error(gpa): memory address 0x7f0012345678 leaked:\n/src/main.zig:10:5: 0x1 in main (gw)")
    add(70, "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header", pid=101)
    for i in range(5):
        add(80 + i, 'info: [agent] tool skill args={"name":"git_workflow"} skill:git-workflow', pid=555,
            unit="whatsapp-responder.service")
    return rows


@pytest.fixture
def journal_files(tmp_path: Path) -> list[Path]:
    if not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")):
        pytest.skip("systemd-journal-remote / journalctl not installed")
    return write_journal(_gateway_entries(), tmp_path / "gw.journal")


def test_export_entry_binary_encoding() -> None:
    raw = export_entry({"MESSAGE": b"a\xffb", "_PID": 1, "X": "line1\nline2"})
    assert raw.startswith(b"MESSAGE\n\x03\x00\x00\x00\x00\x00\x00\x00a\xffb\n_PID=1\nX\n")
    assert raw.endswith(b"\n\n")


@needs_journal
def test_real_journal_file_roundtrip(journal_files: list[Path]) -> None:
    entries = list(read_journal(UNIT, files=journal_files))
    assert len(entries) == 1 + 60 + 3
    assert all(e.unit == UNIT for e in entries)
    assert any("\ufffd" in e.message for e in entries)  # byte-array MESSAGE decoded with replacement
    assert not any("0123456789abcdef" in e.message for e in entries)
    assert entries[0].timestamp == datetime.fromtimestamp(T0 / 1e6, UTC)
    s = summarize_logs(entries, unit=UNIT, bucket="10s")
    assert s.skill_counts == {"git-workflow": 20, "web-search": 10}  # other unit's 5 lines excluded
    assert list(s.restarts["new_pid"]) == [101]
    assert s.priorities == {3: 1, 6: 63}  # priorities vary: reported
    assert s.allocator["error(gpa)"] == 1
    assert s.requests == {"unauth": 1}


@needs_journal
def test_glob_since_until_and_no_entries(journal_files: list[Path], tmp_path: Path) -> None:
    pattern = str(tmp_path / "gw*.journal")
    since = datetime.fromtimestamp((T0 + 35_000_000) / 1e6, UTC)
    late = list(read_journal(UNIT, files=[pattern], since=since))
    assert len(late) == 3 and all(e.timestamp >= since for e in late)
    early = list(read_journal(UNIT, files=[pattern], until=(T0 + 500_000) / 1e6))
    assert len(early) == 1
    with pytest.raises(LogFormatError, match="no journal entries for unit nope.service"):
        list(read_journal("nope", files=[pattern]))
    assert list(read_journal("nope", files=[pattern], require_entries=False)) == []


def test_missing_inputs_and_tools(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="is not installed"):
        list(read_journal(UNIT, journalctl="no-such-journalctl-binary"))
    with pytest.raises(LogFormatError, match="does not exist"):
        list(read_journal(UNIT, files=[tmp_path / "missing.journal"]))
    with pytest.raises(LogFormatError, match="folder"):
        list(read_journal(UNIT, directory=tmp_path / "nodir"))


def test_permission_denied_message(tmp_path: Path) -> None:
    """Mock journalctl: tests run as root, which can read every journal, so the refusal is replayed by a script."""
    fake = tmp_path / "journalctl"
    fake.write_text("#!/bin/sh\necho 'No journal files were opened due to insufficient permissions.' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(LogFormatError, match="systemd-journal") as info:
        list(read_journal(UNIT, journalctl=str(fake)))
    assert "insufficient permissions" in str(info.value)


def test_argv_matching_rules() -> None:
    argv = journal_argv(UNIT, files=["a.journal"], since=1700000000, until="2026-11-28T10:00:00Z")
    assert f"_SYSTEMD_USER_UNIT={UNIT}" in argv and "--file=a.journal" in argv
    assert "--since=@1700000000.000000" in argv and any(a.startswith("--until=@17") for a in argv)
    assert "--unit=nginx.service" in journal_argv("nginx", user=False)  # value attached: never read as an option
    assert f"--user-unit={UNIT}" in journal_argv(UNIT, match_user_unit=False)
    assert argv[argv.index("--") + 1:] == [f"_SYSTEMD_USER_UNIT={UNIT}"]  # matches only after "--"
    with pytest.raises(ConfigError, match="starts with '-'"):
        journal_argv("--since=2000-01-01")
    if os.geteuid() == 0:  # --user-unit would add _UID=0 and miss the gateway user's entries
        assert f"_SYSTEMD_USER_UNIT={UNIT}" in journal_argv(UNIT)


@pytest.mark.parametrize("value,expected", [
    ("2026-11-28T10:00:00Z", 1795860000.0), ("2026-11-28T10:00:00", 1795860000.0), ("@12.5", 12.5), (7, 7.0),
    (datetime(2026, 11, 28, 10, tzinfo=UTC), 1795860000.0), (None, None),
])
def test_to_epoch(value: object, expected: float | None) -> None:
    assert to_epoch(value) == expected  # type: ignore[arg-type]


def test_to_epoch_relative_and_bad() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert to_epoch("2h", now=now) == now.timestamp() - 7200
    with pytest.raises(ConfigError, match="cannot read time"):
        to_epoch("yesterday-ish")


def test_saved_json_export_corpus() -> None:
    entries = list(read_journal_json(DATA / "journal_bad.jsonl", unit=UNIT))
    assert len(entries) == 5  # bad, non-object and truncated lines skipped; other.service filtered
    assert "\ufffd" in entries[1].message and entries[1].level == "error"
    assert entries[2].message == "" and entries[3].pid == 100 and entries[3].message == "a"  # repeated field: first
    assert entries[4].timestamp is None and "0123456789abcdef" not in entries[4].message
    s = summarize_logs(entries, unit=UNIT)
    assert s.skill_counts == {"git-workflow": 1, "code-review": 1}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    st.binary(max_size=120),
    st.dictionaries(st.sampled_from(["MESSAGE", "_PID", "__REALTIME_TIMESTAMP", "PRIORITY", "_SYSTEMD_USER_UNIT"]),
                    st.one_of(st.none(), st.integers(-2**70, 2**70), st.text(max_size=30),
                              st.lists(st.integers(-5, 300), max_size=10), st.floats())).map(
        lambda d: json.dumps(d).encode())), max_size=20))
def test_property_json_export_never_crashes(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"\n".join(lines))
    try:
        s = summarize_logs(read_journal_json(path), bucket="1s")
    except ZcnbError as exc:
        assert str(exc)
        return
    json.dumps(s.to_dict(), default=str)


@pytest.mark.slow
@needs_journal
@pytest.mark.parametrize("profile", ["real", "runbook"])
def test_simulated_gateway_log_through_the_journal(tmp_path: Path, profile: str) -> None:
    """The simulator's own log lines, stamped on arrival, written to a journal and summarised."""
    sys.path.insert(0, str(ROOT))
    from bench.record_journal import record, to_journal

    rec = record(duration_s=3, bucket_s=1, profile=profile, leak="none", max_per_bucket=4, seed=5,
                 workdir=tmp_path)
    files = to_journal(rec, tmp_path)
    s = summarize_logs(read_journal(UNIT, files=files), unit=UNIT, bucket="1s")
    truth = {k.replace("_", "-"): v for k, v in rec.truth["skills"].items()}
    assert s.skill_counts == truth
    assert s.tools.set_index("tool")["count"].drop("skill").to_dict() == rec.truth["tools"]
    if profile == "real":
        assert s.requests.get("unauth", 0) == rec.truth["unauth"]
    else:  # the runbook profile logs both forms: each invocation counted once
        assert all(r.token_form == r.tool_form == r.count for r in s.skills.itertuples())
    assert not any(rec.token in str(v) for v in s.to_dict().values())
