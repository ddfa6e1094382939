"""The gateways the exporter watches and the receiver reports on: how to find each process and its log.

A target is written on the command line as ``KEY=VALUE`` pairs separated by commas::

    --gateway unit=zeptoclaw-gateway.service
    --gateway instance=gw2,pid_file=/run/gw2.pid,log_file=/var/log/gw2.log

Keys: ``instance`` (the ``instance`` label; default ``<host>/<name>``), ``unit`` (systemd user unit: its
MainPID and its journal), ``pid``, ``pid_file``, ``pattern`` (how to find the process; the first given wins,
then the unit), ``log_file`` (a log the gateway writes to, for a gateway not under systemd: tailed instead of
the journal), ``journal_file`` (repeatable) / ``journal_dir`` (read the unit's journal from these files
instead of the system journal).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from ..exceptions import ConfigError

__all__ = ["GatewayTarget", "default_target", "parse_target", "parse_targets"]

_KEYS = ("instance", "unit", "pid", "pid_file", "pattern", "log_file", "journal_file", "journal_dir")
_LABEL_OK = re.compile(r"^[\w.:/@+-]{1,128}$")


@dataclass(frozen=True)
class GatewayTarget:
    """One gateway on this host."""

    instance: str
    unit: str | None = None
    pid: int | None = None
    pid_file: str | None = None
    pattern: str | None = None
    log_file: str | None = None
    journal_files: tuple[str, ...] = field(default_factory=tuple)
    journal_dir: str | None = None

    @property
    def unit_label(self) -> str:
        return self.unit or ""

    @property
    def log_source(self) -> str:
        """``file`` (tail ``log_file``), ``journal`` (the unit's journal) or ``none``."""
        if self.log_file:
            return "file"
        return "journal" if self.unit else "none"

    def find_by(self) -> str:
        """How the process is found, for messages."""
        for key in ("pid", "pid_file", "pattern"):
            if getattr(self, key):
                return f"{key} {getattr(self, key)}"
        return f"unit {self.unit} MainPID" if self.unit else "nothing"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["journal_files"] = list(self.journal_files)
        return d


def _host() -> str:
    return socket.gethostname() or "localhost"


def _default_instance(unit: str | None, pattern: str | None, pid_file: str | None, log_file: str | None) -> str:
    name = (unit or "").removesuffix(".service") or pattern or ""
    if not name:
        base = os.path.basename(pid_file or log_file or "")
        name = base.rsplit(".", 1)[0] if base else "gateway"
    return f"{_host()}/{name}"


def _unit(value: str) -> str:
    from ..logs.message import full_unit

    out = full_unit(value.strip())
    if not out or "/" in out or not _LABEL_OK.match(out):
        raise ConfigError(f"unit {value!r} is not a unit name", hint="e.g. unit=zeptoclaw-gateway.service")
    return out


def _pid(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"pid {value!r} is not a positive integer", hint="e.g. pid=1234")
    return int(value)


def _pairs(spec: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not value.strip():
            raise ConfigError(f"gateway spec {spec!r}: {part!r} is not KEY=VALUE",
                              hint="e.g. --gateway unit=zeptoclaw-gateway.service or "
                                   "--gateway instance=gw2,pid_file=/run/gw2.pid,log_file=/var/log/gw2.log")
        if key not in _KEYS:
            raise ConfigError(f"gateway spec {spec!r}: unknown key {key!r}", hint=f"keys: {', '.join(_KEYS)}")
        if key != "journal_file" and key in out:
            raise ConfigError(f"gateway spec {spec!r}: {key} given twice", hint="give each key once")
        out.setdefault(key, []).append(value.strip())
    return out


def parse_target(spec: str) -> GatewayTarget:
    """A :class:`GatewayTarget` from ``KEY=VALUE,...`` (see the module docstring)."""
    kv = _pairs(spec)
    one = {k: v[0] for k, v in kv.items()}
    unit = _unit(one["unit"]) if "unit" in one else None
    if not any(k in one for k in ("unit", "pid", "pid_file", "pattern")):
        raise ConfigError(f"gateway spec {spec!r} says neither how to find the process nor its unit",
                          hint="add unit=..., pid_file=..., pattern=... or pid=...")
    if "pattern" in one:
        try:
            re.compile(one["pattern"])
        except re.error as exc:
            raise ConfigError(f"gateway spec {spec!r}: pattern is not a regular expression: {exc}",
                              hint="pgrep -f syntax") from None
    if "log_file" in one and ("journal_file" in kv or "journal_dir" in one):
        raise ConfigError(f"gateway spec {spec!r}: give a log_file or journal files, not both",
                          hint="log_file is for a gateway not under systemd; journal_* read a unit's journal")
    if ("journal_file" in kv or "journal_dir" in one) and unit is None:
        raise ConfigError(f"gateway spec {spec!r}: journal files need unit= (entries are matched by unit)",
                          hint="add unit=zeptoclaw-gateway.service")
    instance = one.get("instance") or _default_instance(unit, one.get("pattern"), one.get("pid_file"),
                                                        one.get("log_file"))
    if not _LABEL_OK.match(instance):
        raise ConfigError(f"instance {instance!r} is not a usable label value",
                          hint="letters, digits and . : / @ + - _ only, at most 128 characters")
    return GatewayTarget(instance=instance, unit=unit, pid=_pid(one["pid"]) if "pid" in one else None,
                         pid_file=one.get("pid_file"), pattern=one.get("pattern"), log_file=one.get("log_file"),
                         journal_files=tuple(kv.get("journal_file", ())), journal_dir=one.get("journal_dir"))


def default_target(*, settings: Any = None) -> GatewayTarget:
    """The settings' gateway: its unit (MainPID and journal)."""
    from ..config import load_settings

    s = settings if settings is not None else load_settings()
    return parse_target(f"unit={s.unit}")


def parse_targets(specs: list[str] | tuple[str, ...] | None, *, settings: Any = None) -> tuple[GatewayTarget, ...]:
    """Targets from ``--gateway`` specs (none: the settings' unit); instance names must be unique."""
    targets = tuple(parse_target(s) for s in specs) if specs else (default_target(settings=settings),)
    seen: set[str] = set()
    for t in targets:
        if t.instance in seen:
            raise ConfigError(f"two gateways have the instance name {t.instance!r}",
                              hint="give each --gateway its own instance=NAME")
        seen.add(t.instance)
    return targets
