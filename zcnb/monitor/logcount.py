"""Incremental log counting for the exporter: skills, tools, errors, warnings and crashes as counters.

Two sources, both incremental and bounded:

- :class:`JournalFollower`: one ``journalctl -f -o json`` per unit (matched with ``_SYSTEMD_USER_UNIT=``,
  as :mod:`zcnb.logs.journal` does; one entry per line, so an entry is counted as soon as journalctl writes it), read
  in blocks of at most 1 MiB by a reader thread. It remembers the cursor of
  the last entry it counted and, when journalctl exits, starts again ``--after-cursor`` it (nothing counted
  twice, nothing skipped). Work follows the journal's volume, not the scrape rate.
- :class:`FileTail`: a log file a gateway not under systemd writes to, read from where the last scrape stopped,
  at most ``max_bytes`` per scrape (the rest waits for the next scrape and is shown as a backlog). A file that
  shrank or was replaced (rotation), or that did not exist yet when the exporter started, is read from its
  start.

Skill and tool calls are counted with the stage-03 scanner (:func:`zcnb.logs.scan.scan_messages`) and its
rule for the two forms (:func:`zcnb.logs.summary.skill_totals`), so the exporter and ``zcnb logs`` agree: a
skill counts once per call even when the line shows both the ``skill:NAME`` and the ``tool skill
args={"name":...}`` form. Errors are lines at Zig level ``error``, ``Connection error: ...`` lines
and crashes; warnings are Zig ``warning`` and ``Warn:`` lines; a crash is the real binary's ``thread N panic:``
line. Only counts and skill/tool names (checked, at most ``max_names`` each) leave this module: never log text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..config import check_unit

__all__ = ["CountsSnapshot", "FileTail", "JournalFollower", "LogCounts"]

_ERROR = re.compile(rb"^(?:error(?:\([^)\n]*\))?: |Connection error: |thread \d+ panic: )", re.MULTILINE)
_WARNING = re.compile(rb"^(?:warning(?:\([^)\n]*\))?: |Warn: )", re.MULTILINE)
_PANIC = re.compile(rb"^thread \d+ panic: ", re.MULTILINE)
_NAME_OK = re.compile(r"^[A-Za-z0-9][\w.-]{0,63}$")
OTHER = "other"
MAX_LINE = 64 << 10  # longer lines are cut (the counting patterns all sit at the start of a line)
READ_BLOCK = 1 << 20  # bytes per read from the journalctl pipe
MAX_ENTRY = 16 << 20  # a JSON entry longer than this is dropped


@dataclass(frozen=True)
class CountsSnapshot:
    """The counters at one moment."""

    lines: int = 0
    errors: int = 0
    warnings: int = 0
    crashes: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    tools: dict[str, int] = field(default_factory=dict)


class LogCounts:
    """Thread-safe running totals of one gateway's log; ``feed`` a batch of lines, ``snapshot`` to read."""

    def __init__(self, *, max_names: int = 100, redact: Callable[[str], str] | None = None) -> None:
        self._lock = threading.Lock()
        self._max_names = max_names
        self._redact = redact  # names are labels: a secret logged as a skill or tool name is redacted first
        self._lines = self._errors = self._warnings = self._crashes = 0
        self._skills: dict[str, int] = {}
        self._tools: dict[str, int] = {}

    def _add_name(self, table: dict[str, int], name: str, n: int) -> None:
        if not _NAME_OK.match(name):
            name = OTHER
        elif name not in table and len(table) - (OTHER in table) >= self._max_names:
            name = OTHER  # bounded label cardinality, whatever the log says
        table[name] = table.get(name, 0) + n

    def feed(self, lines: list[bytes]) -> None:
        """Count a batch of complete log lines (messages without a trailing newline)."""
        if not lines:
            return
        from ..logs.scan import Acc, scan_messages
        from ..logs.summary import skill_totals

        lines = [ln[:MAX_LINE] for ln in lines]
        acc = Acc()
        scan_messages(acc, lines, [None] * len(lines), bucket=None)
        blob = b"\n".join(lines)
        errors, warnings, crashes = len(_ERROR.findall(blob)), len(_WARNING.findall(blob)), len(_PANIC.findall(blob))
        skills, _by_bucket = skill_totals(acc) if self._redact is None else skill_totals(acc, redact=self._redact)
        tools: Counter[str] = Counter()
        for name, n in acc.tools.items():
            tools[name if self._redact is None else self._redact(name)] += n
        with self._lock:
            self._lines += len(lines)
            self._errors += errors
            self._warnings += warnings
            self._crashes += crashes
            for name, n in sorted(skills.items()):  # sorted: which names fit under the cap does not vary
                self._add_name(self._skills, name, n)
            for name, n in sorted(tools.items()):
                self._add_name(self._tools, name, n)

    def snapshot(self) -> CountsSnapshot:
        with self._lock:
            return CountsSnapshot(self._lines, self._errors, self._warnings, self._crashes, dict(self._skills),
                                  dict(self._tools))


class FileTail:
    """Read what a log file gained since the last :meth:`poll`, at most ``max_bytes`` per call."""

    def __init__(self, path: str | os.PathLike[str], counts: LogCounts, *, from_start: bool = False,
                 max_bytes: int = 2 << 20) -> None:
        self.path = os.fspath(path)
        self.counts = counts
        self.max_bytes = max_bytes
        self.backlog = 0
        self.ok = False
        self.error = ""
        self.rotations = 0
        self._id: tuple[int, int] | None = None
        self._pos = 0
        self._carry = b""
        self._from_start = from_start

    def poll(self) -> None:
        from ..exceptions import ZcnbError
        from ..files import open_input

        try:
            fh = open_input(self.path, what="log file", error=ZcnbError, hint="check the gateway's log_file=")
        except ZcnbError as exc:
            self.ok, self.error, self.backlog = False, exc.message, 0
            self._from_start |= self._id is None  # a file that appears later is new since the start: read it all
            return
        with fh:
            data, size = self._read_new(fh)
        if data is None:
            return
        self.ok, self.error = True, ""
        self._pos += len(data)
        self.backlog = max(size - self._pos, 0)
        if data:
            parts = (self._carry + data).split(b"\n")
            carry = parts.pop()
            self._carry = carry if len(carry) <= MAX_LINE else carry[:MAX_LINE]  # a newline-less flood stays bounded
            self.counts.feed([p.rstrip(b"\r") for p in parts])

    def _read_new(self, fh: BinaryIO) -> tuple[bytes | None, int]:
        """(what the open file gained since the last poll, at most ``max_bytes``; None when unreadable), size."""
        st = os.fstat(fh.fileno())
        ident = (st.st_dev, st.st_ino)
        if self._id is None:  # first look: start at the end (like tail -n0) unless asked for the whole file
            self._id, self._pos = ident, (0 if self._from_start else st.st_size)
        elif ident != self._id or st.st_size < self._pos:  # replaced or truncated: read the new file from 0
            self._id, self._pos, self._carry = ident, 0, b""
            self.rotations += 1
        want = min(st.st_size - self._pos, self.max_bytes)
        if want <= 0:
            return b"", st.st_size
        try:
            fh.seek(self._pos)
            return fh.read(want), st.st_size
        except OSError as exc:
            self.ok, self.error = False, f"cannot read log file {self.path}: {exc.strerror or exc}"
            return None, st.st_size


class JournalFollower:
    """Follow one unit's journal with ``journalctl -f`` in a thread, counting each entry once.

    ``journalctl -f`` reads the current boot: that is where a running gateway's entries are.

    ``start``: ``"end"`` (only entries written from now on; the default), ``"all"`` (the whole journal), or
    epoch seconds (entries since then). ``argv_extra`` holds ``--file=``/``--directory=`` arguments.
    """

    def __init__(self, unit: str, counts: LogCounts, *, start: str | float = "end", files: tuple[str, ...] = (),
                 directory: str | None = None, journalctl: str = "journalctl", restart_s: float = 2.0,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.unit = unit
        self.counts = counts
        self.start_at = start
        self.files = files
        self.directory = directory
        self.journalctl = journalctl
        self.restart_s = restart_s
        self.on_error = on_error
        self.cursor: str | None = None
        self.error = ""
        self.entries = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"zcnb-journal-{unit}", daemon=True)

    @property
    def ok(self) -> bool:
        p = self._proc
        return p is not None and p.poll() is None

    def argv(self) -> list[str]:
        argv = [self.journalctl, "-f", "-o", "json", "--output-fields=MESSAGE", "--all", "--no-pager"]
        argv += [f"--file={f}" for f in self.files]
        if self.directory:
            argv.append(f"--directory={self.directory}")
        if self.cursor:
            argv.append(f"--after-cursor={self.cursor}")
        elif self.start_at == "end":
            argv += ["-n", "0"]
        elif self.start_at == "all":
            argv += ["-n", "all"]
        else:
            argv += ["-n", "all", f"--since=@{float(self.start_at):.6f}"]
        argv += ["--", f"_SYSTEMD_USER_UNIT={check_unit(self.unit)}"]  # a match, never read as an option
        return argv

    def start(self) -> JournalFollower:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        p = self._proc
        if p is not None and p.poll() is None:
            p.terminate()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            rc, err = self._follow_once()
            if self._stop.is_set():
                return
            self.error = f"journalctl exited ({rc}): {err or 'no message'}; starting it again"
            if self.on_error is not None:
                self.on_error(self.error)
            self._stop.wait(self.restart_s)

    def _follow_once(self) -> tuple[int | None, str]:
        try:
            proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, bufsize=0)
        except OSError as exc:
            return None, f"cannot run {self.journalctl}: {exc.strerror}"
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        fd = proc.stdout.fileno()
        carry = b""
        try:
            while data := os.read(fd, READ_BLOCK):
                lines = (carry + data).split(b"\n")
                carry = lines.pop()
                if len(carry) > MAX_ENTRY:  # a runaway entry: drop it rather than grow without bound
                    carry = b""
                self._count(lines)
            err = proc.stderr.read().decode("utf-8", "replace").strip()
        finally:
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        return rc, err.splitlines()[-1][:300] if err else ""

    def _count(self, lines: list[bytes]) -> None:
        messages: list[bytes] = []
        cursor = None
        for raw in lines:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            messages.append(_message(obj.get("MESSAGE")))
            cursor = obj.get("__CURSOR") or cursor
        self.counts.feed(messages)
        self.entries += len(messages)
        if isinstance(cursor, str):
            self.cursor = cursor


def _message(value: Any) -> bytes:
    """A journal JSON ``MESSAGE``: a string, or an array of bytes when it is not valid UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    return b""


def describe(source: Any) -> str:
    """One line on a log source's state, for the exporter's start-up message."""
    if isinstance(source, FileTail):
        return f"log file {source.path}"
    if isinstance(source, JournalFollower):
        where = " ".join(source.files) or source.directory or "the journal"
        return f"journal of {source.unit} ({where})"
    return "no log source"
