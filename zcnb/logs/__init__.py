"""Logs: the gateway's journal and text logs, parsed and counted (stage 03).

``message`` (one Zig log line: :class:`LogEntry`, its level), ``entries`` (log files, :func:`summarize_logs`),
``formats`` (saved ``journalctl -o export`` and ``-o short`` files), ``journal`` (journalctl reader and
journal files), ``journal_export`` (journalctl's export format), ``skills`` (the skill-name rule),
``scan``/``chunks``/``native`` (the
counting engines: Python, and the optional C extension ``_scan`` with identical results), ``summary``
(:class:`LogSummary`), ``oom`` (OOM kills). The names below are this package's front door.
"""

from __future__ import annotations

from .entries import bucket_seconds, read_log_file, summarize_logs
from .message import LEVELS, LogEntry, parse_message, unit_identifier
from .summary import LogSummary

__all__ = [
    "LEVELS",
    "LogEntry",
    "LogSummary",
    "bucket_seconds",
    "parse_message",
    "read_log_file",
    "summarize_logs",
    "unit_identifier",
]
