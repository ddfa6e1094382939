"""Logs: the gateway's journal and text logs, parsed and counted (stage 03).

``entries`` (Zig log lines, text logs, :func:`summarize_logs`), ``journal`` (journalctl reader and
journal files), ``journal_export`` (journalctl's export format), ``scan``/``chunks``/``native`` (the
counting engines: Python, and the optional C extension ``_scan`` with identical results), ``summary``
(:class:`LogSummary`), ``oom`` (OOM kills). The names below are this package's front door.
"""

from __future__ import annotations

from .entries import LEVELS, LogEntry, bucket_seconds, parse_message, read_log_file, summarize_logs, unit_identifier
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
