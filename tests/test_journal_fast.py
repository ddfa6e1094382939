"""The fast journal reader (journalctl -o export, block parsing, message cache) against a straightforward
reference (journalctl -o json --all, one json.loads and one make_entry per line) on real journal files with odd
entries: binary and multi-line MESSAGEs, NUL bytes, missing and repeated fields, other units, secrets."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcnb.logs import LogEntry, parse_message
from zcnb.logs.message import ReadStats, make_entry
from zcnb.logs.journal import JOURNAL_REMOTE, export_entry, journal_argv, read_journal
from zcnb.logs.journal_export import EntryBuilder, export_records, split_line
from zcnb.redact import Redactor

UNIT = "zeptoclaw-gateway.service"
T0 = 1_795_900_000_000_000
SECRET = "0123456789abcdef0123456789abcdef"

needs_journal = pytest.mark.skipif(not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")),
                                   reason="systemd-journal-remote / journalctl not installed")


def _raw_entry(fields: list[tuple[str, bytes]]) -> bytes:
    """An export entry that may repeat a field (export_entry takes a dict, so it cannot)."""
    out = b""
    for key, value in fields:
        out += key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return out + b"\n"


def _odd_export() -> bytes:
    rows: list[bytes] = []

    def add(i: int, extra: dict[str, str | bytes | int], *, unit: str | None = UNIT, pid: int | str | None = 100,
            prio: int | str | None = 6) -> None:
        f: dict[str, str | bytes | int] = {"__REALTIME_TIMESTAMP": T0 + i * 1000}
        if unit:
            f["_SYSTEMD_USER_UNIT"] = unit
            f["SYSLOG_IDENTIFIER"] = unit.removesuffix(".service")
        if pid is not None:
            f["_PID"] = pid
        if prio is not None:
            f["PRIORITY"] = prio
        f.update(extra)
        rows.append(export_entry(f))

    add(0, {"MESSAGE": f"Main Token: {SECRET}"})
    for i in range(1, 400):  # many ordinary lines, some repeated verbatim (the message cache)
        msg = ("warning(gateway): unauthorized GET /health: Missing X-Auth-Token header" if i % 4 == 0 else
               f'info: [agent] tool skill args={{"name":"git_workflow","n":{i}}}' if i % 4 == 1 else
               f"debug(alloc): [nim] request tokens={i} latency_ms=31 x=y=z")
        add(i, {"MESSAGE": msg}, pid=100 if i < 200 else 101)
    add(400, {"MESSAGE": b"error: [nim] bad reply \xff\xfe\xfd"}, prio=3)  # not UTF-8
    add(401, {"MESSAGE": "error(gpa): memory address 0x7f00 leaked:\n/src/main.zig:10:5\n\nend"})
    add(402, {"MESSAGE": b"nul\x00inside \x01 Bearer abcdefghijk"})
    add(403, {"MESSAGE": "x" * (0x0A0A - 1) + "\n"})  # binary size bytes 0a 0a 00 ..: '\n\n' before the NUL
    add(404, {"MESSAGE": ""})
    add(405, {"OTHER": "no message at all"}, pid=None, prio=None)
    add(406, {"MESSAGE": "pid and priority are words"}, pid="abc", prio="x")
    add(407, {"MESSAGE": "info: [agent] other unit skill:git-workflow"}, unit="whatsapp-responder.service")
    add(408, {"MESSAGE": "system unit", "_SYSTEMD_UNIT": "gw.service"}, unit=None)
    add(409, {"MESSAGE": "nvapi-AbCdEfGhIjKlMnOpQrStUv12 and sk-abcdefghijklmnop ünïcödé ✓ [tag] x"})
    add(410, {"MESSAGE": "long " + "y" * 100_000})
    rows.append(_raw_entry([("__REALTIME_TIMESTAMP", str(T0 + 411_000).encode()), ("_SYSTEMD_USER_UNIT", UNIT.encode()),
                            ("MESSAGE", b"first of two"), ("MESSAGE", b"second of two\n"), ("_PID", b"7"),
                            ("_PID", b"8")]))
    for i in range(412, 420):
        add(i, {"MESSAGE": f"info: [heartbeat] tick {i}"})
    return b"".join(rows)


@pytest.fixture(scope="module")
def odd_journal(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")):
        pytest.skip("systemd-journal-remote / journalctl not installed")
    out = tmp_path_factory.mktemp("oddj") / "odd.journal"
    subprocess.run([JOURNAL_REMOTE, f"--output={out}", "-"], input=_odd_export(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return sorted(out.parent.glob("odd*.journal"))


def _ref_text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(x, int) for x in v):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, list):
        return _ref_text(v[0])
    return str(v)


def _ref_int(v: Any) -> int | None:
    t = _ref_text(v)
    try:
        return int(t) if t is not None else None
    except ValueError:
        return None


def reference(files: list[Path], unit: str | None, redact: Any) -> list[LogEntry]:
    """The plain way: the whole JSON of every entry, one json.loads and one make_entry per line."""
    argv = ["journalctl", "-o", "json", "--all", "--no-pager", *[f"--file={f}" for f in files]]
    if unit:
        argv.append(f"_SYSTEMD_USER_UNIT={unit}")
    out = subprocess.run(argv, capture_output=True, check=True, timeout=120).stdout
    entries = []
    for line in out.splitlines():
        obj = json.loads(line)
        usec = _ref_int(obj.get("__REALTIME_TIMESTAMP"))
        entries.append(make_entry(
            _ref_text(obj.get("MESSAGE")) or "",
            timestamp=datetime.fromtimestamp(usec / 1e6, UTC) if usec is not None else None,
            pid=_ref_int(obj.get("_PID")),
            unit=_ref_text(obj.get("_SYSTEMD_USER_UNIT")) or _ref_text(obj.get("_SYSTEMD_UNIT")),
            identifier=_ref_text(obj.get("SYSLOG_IDENTIFIER")), priority=_ref_int(obj.get("PRIORITY")),
            redact=redact))
    return entries


@needs_journal
@pytest.mark.parametrize("unit", [UNIT, None])
def test_fast_reader_equals_reference(odd_journal: list[Path], unit: str | None) -> None:
    red = Redactor.create(secrets=["tokens=12"])
    ours = list(read_journal(unit, files=odd_journal, redact=red))
    ref = reference(odd_journal, unit, red)
    assert len(ours) == len(ref) == (418 if unit else 420)
    assert ours == ref
    text = "\n".join(e.message for e in ours)
    assert SECRET not in text and "abcdefghijk" not in text and "nvapi-AbCd" not in text and "tokens=12 " not in text
    assert "\ufffd" in text and "\x00" in text and "second of two" not in text  # repeated field: the first value
    if unit is None:
        assert {e.unit for e in ours} == {UNIT, "whatsapp-responder.service", "gw.service"}


@needs_journal
def test_non_redactor_callable_is_called_per_entry(odd_journal: list[Path]) -> None:
    calls: list[str] = []

    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    ours = list(read_journal(UNIT, files=odd_journal, redact=upper))
    assert len(calls) == len(ours)  # no caching for an arbitrary callable (it may not be pure)
    calls.clear()
    assert ours == reference(odd_journal, UNIT, upper)


@needs_journal
def test_block_boundaries_anywhere(odd_journal: list[Path]) -> None:
    """The export stream cut into blocks of odd sizes parses to the same records as one big block."""
    argv = journal_argv(None, files=odd_journal)
    data = subprocess.run(argv, capture_output=True, check=True, timeout=120).stdout

    def records(block: int) -> list[dict[bytes, bytes]]:
        pos = 0

        def read(n: int) -> bytes:
            nonlocal pos
            chunk = data[pos:pos + n]
            pos += len(chunk)
            return chunk

        return [r for batch in export_records(read, block=block) for r in batch]

    whole = records(len(data) + 1)
    assert len(whole) == 420
    for block in (1, 7, 64, 409, 4096, 65_537):
        assert records(block) == whole, block


def test_truncated_stream_is_counted() -> None:
    data = export_entry({"MESSAGE": "a", "_PID": 1}) + export_entry({"MESSAGE": b"b\nc", "_PID": 2})
    for cut, want in ((len(data) - 3, 1), (len(data) - 1, 1), (len(data), 2)):
        stats = ReadStats()
        chunks = [data[:cut], b""]
        recs = [r for batch in export_records(lambda n, c=chunks: c.pop(0), stats=stats) for r in batch]
        assert len(recs) == want and stats.unreadable == 2 - want
    assert recs[1] == {b"MESSAGE": b"b\nc", b"_PID": b"2"}


def test_builder_cache_and_odd_numbers() -> None:
    b = EntryBuilder(Redactor.create())
    recs = [{b"MESSAGE": b"warning: X-Auth-Token: abcdef123", b"_PID": "٣".encode(), b"PRIORITY": b"-1",
             b"__REALTIME_TIMESTAMP": b"99999999999999999999"}] * 2
    e1, e2 = b.entries(recs)
    assert e1 == e2 and e1.pid == 3 and e1.priority == -1 and e1.timestamp is None
    assert "abcdef123" not in e1.message and e1.level == "warning"


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b, c, d: a + b + c + d,
              st.sampled_from(["", "info", "error", "warning", "debug", "Info", "err"]),
              st.sampled_from(["", "()", "(gpa)", "(a b)", "(x", ")", "(x)y"]),
              st.sampled_from(["", ":", ": ", ":  ", " :"]),
              st.text(alphabet="[]ab_.-é \n:()", max_size=12)),
))
def test_split_line_matches_parse_message(message: str) -> None:
    level, scope, tag, _ = parse_message(message)
    assert split_line(message) == (level, scope, tag)
