"""Writes the bad-input corpus of this folder (deterministic: run it again after changing a case).

    python tests/data/logs/bad/make.py

Each file is one kind of malformed log or journal export; tests/test_logs_bad_input.py states the exact
outcome of each (both engines, read_log_file and ``zcnb logs``), tests/test_logscan_engines.py checks the two
engines agree on every file here.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

HERE = Path(__file__).parent
US = 1_795_900_000_000_000  # 2026-11-28T20:26:40Z
UNIT = "zeptoclaw-gateway.service"


def _json(message: object, usec: int | str = US, pid: str = "4100") -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": str(usec), "_PID": pid, "_SYSTEMD_UNIT": UNIT,
                       "SYSLOG_IDENTIFIER": "zeptoclaw-gateway", "MESSAGE": message}) + "\n"


def _export(fields: list[tuple[str, bytes | str]]) -> bytes:
    out = b""
    for name, value in fields:
        raw = value.encode() if isinstance(value, str) else value
        if isinstance(value, str) and "\n" not in value:
            out += name.encode() + b"=" + raw + b"\n"
        else:
            out += name.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
    return out + b"\n"


def _entry(message: bytes | str, usec: str = str(US)) -> list[tuple[str, bytes | str]]:
    return [("__CURSOR", "s=1"), ("__REALTIME_TIMESTAMP", usec), ("_PID", "4100"), ("_SYSTEMD_UNIT", UNIT),
            ("MESSAGE", message)]


def main() -> None:
    deep = '{"MESSAGE": ' + "[" * 3000 + "]" * 3000 + "}\n"
    (HERE / "nested.jsonl").write_text(
        _json("info: [agent] invoking skill:web-search") + deep + _json("error: [nim] 503 upstream", US + 1_000_000))
    (HERE / "unparseable.jsonl").write_text(
        _json("info: skill:git_workflow")
        + '{"MESSAGE": "cut short\n'  # a line journalctl did not finish
        + "not json at all\n"
        + "[1, 2, 3]\n"  # JSON, not an object
        + '"just a string"\n'
        + "\n"  # blank: not counted
        + '{"MESSAGE": "x"} trailing\n'
        + _json("warning: slow", US + 2_000_000))
    (HERE / "bytes_message.jsonl").write_text(
        _json([0x65, 0x72, 0x72, 0x6F, 0x72, 0x3A, 0x20, 0xFF, 0xFE, 0x20, 0x62, 0x61, 0x64])  # "error: \xff\xfe bad"
        + _json(list(b"info: [agent] invoking skill:calendar \xc3\x28"))
        + _json(list("warning: caf\u00e9".encode())))
    (HERE / "times_out_of_range.jsonl").write_text(
        _json("info: skill:a", US)
        + _json("error: year 9999", "253402300799000000")
        + _json("error: year 10000", "253402300800000000")
        + _json("error: twenty digits", "99999999999999999999")
        + _json("error: negative", "-1")
        + _json("error: from 2200 on", "7258118400000000")
        + _json("info: skill:b just before 2200", "7258118399999999")
        + _json("info: no number", "abc"))
    iso = "{} gw01 zeptoclaw-gateway[4100]: {}\n"
    (HERE / "times_out_of_range.log").write_text(
        iso.format("2026-11-28T10:00:00+00:00", "info: skill:a")
        + iso.format("9999-12-31T23:59:59+00:00", "error: year 9999")
        + iso.format("0000-01-01T00:00:00+00:00", "error: year 0")
        + iso.format("2026-13-45T99:99:99+00:00", "error: not a date")
        + iso.format("1969-12-31T23:59:59+00:00", "error: before 1970")
        + iso.format("2200-01-01T00:00:00+00:00", "error: from 2200 on")
        + iso.format("2199-12-31T23:59:59+00:00", "info: skill:b just before 2200")
        + iso.format("2026-11-28T10:00:01+00:00", "info: skill:a"))
    (HERE / "times_out_of_range.export").write_bytes(
        _export(_entry("info: skill:a")) + _export(_entry("error: year 9999", "253402300799000000"))
        + _export(_entry("error: from 2200 on", "7258118400000000")))
    good = _export(_entry("info: skill:a"))
    (HERE / "malformed.export").write_bytes(
        good
        + b"__CURSOR=s=2\nGARBAGE WITHOUT EQUALS\nMESSAGE=error: in a bad entry\n\n"  # not NAME=value
        + b"\n\n"  # empty entries (extra blank lines): ignored
        + _export(_entry("error: kept"))
        + b"MESSAGE\n" + struct.pack("<Q", 5) + b"abcdeX" + b"\n\n"  # payload not followed by a newline
        + b"MESSAGE\n" + b"\xff" * 8 + b"xyz\n\n"  # a size no export holds (top byte not 0)
        + _export(_entry("warning: kept too"))
        + b"__CURSOR=s=9\n__REALTIME_TIMESTAMP=1795900000000000\nMESSAGE=cut")  # journalctl stopped here
    (HERE / "nul.bin").write_bytes(b"\0" * 4096)
    rng = random.Random(17)
    (HERE / "elf_like.bin").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(rng.randrange(256) for _ in range(8000)))
    text = "".join(iso.format(f"2026-11-28T10:00:{s:02d}+00:00", f"info: skill:web-search {s}") for s in range(40))
    (HERE / "text_with_nul.log").write_bytes(text.encode().replace(b"search 7", b"search \0 7"))


if __name__ == "__main__":
    main()
