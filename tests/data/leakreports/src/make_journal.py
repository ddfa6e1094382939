"""Turn a leak report into real journal entries (one per line, like journald stores stderr)
and print them back with ``journalctl -o short-iso``.

Usage: python make_journal.py REPORT OUT.txt  (needs systemd-journal-remote and journalctl)
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def main(report: str, out: str) -> None:
    lines = Path(report).read_text(encoding="utf-8").splitlines()
    ts = 1_795_000_000_000_000  # fixed start so the fixture is stable
    export = bytearray()
    for i, line in enumerate(lines):
        for key, value in (("__REALTIME_TIMESTAMP", str(ts + i * 1000)), ("__MONOTONIC_TIMESTAMP", str(i * 1000)),
                           ("_BOOT_ID", "0" * 32), ("_HOSTNAME", "gw-host"), ("_PID", "4242"),
                           ("SYSLOG_IDENTIFIER", "zeptoclaw-gateway"), ("_SYSTEMD_USER_UNIT", "zeptoclaw-gateway.service"),
                           ("PRIORITY", "6"), ("MESSAGE", line)):
            export += f"{key}={value}\n".encode()
        export += b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        jfile = Path(tmp) / "leak.journal"
        subprocess.run(["/lib/systemd/systemd-journal-remote", f"--output={jfile}", "-"], input=bytes(export), check=True)
        text = subprocess.run(["journalctl", "--file", str(jfile), "-o", "short-iso", "--no-pager", "--utc"],
                              capture_output=True, text=True, check=True).stdout
    Path(out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
