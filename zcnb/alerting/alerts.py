"""Alertmanager webhook payloads, and the alert events an incident's timeline shows.

The webhook body (Alertmanager ``webhook_configs``, version 4) carries ``alerts``: each with ``status``
(``firing``/``resolved``), ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL`` and
``fingerprint``. An incident folder started by an alert holds ``alert.json`` (the alert that started it) and
``alerts.jsonl`` (one line per event: firing, more alerts for the same gateway, resolved, where the data came
from), which :func:`zcnb.report.timeline.build_timeline` puts on the evidence timeline.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError
from ..files import write_json, write_private

__all__ = ["Alert", "parse_webhook", "record_event", "write_alert"]

_FP = re.compile(r"^[0-9a-f]{1,64}$")
MAX_ALERTS = 500  # per notification; Alertmanager's max_alerts defaults to all, a webhook body stays small


@dataclass(frozen=True)
class Alert:
    """One alert of a webhook notification."""

    fingerprint: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: str = ""
    ends_at: str = ""
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "?")

    @property
    def instance(self) -> str:
        return self.labels.get("instance", "")

    @property
    def unit(self) -> str:
        return self.labels.get("unit", "")

    @property
    def pid(self) -> str:
        return self.labels.get("pid", "")

    @property
    def gateway(self) -> tuple[str, str]:
        """The gateway this alert is about: (instance, unit)."""
        return self.instance, self.unit

    def describe(self) -> str:
        pid = f" pid {self.pid}" if self.pid else ""
        return f"{self.name} for {self.instance or '?'}{pid}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strs(obj: Any, what: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ConfigError(f"alert {what} must be an object", hint="send Alertmanager's webhook JSON (version 4)")
    return {str(k)[:200]: str(v)[:2000] for k, v in obj.items()}


def _alert(obj: Any) -> Alert:
    if not isinstance(obj, dict):
        raise ConfigError("an alert is not a JSON object", hint="send Alertmanager's webhook JSON (version 4)")
    status = obj.get("status")
    if status not in ("firing", "resolved"):
        raise ConfigError(f"alert status {status!r} is neither firing nor resolved",
                          hint="send Alertmanager's webhook JSON (version 4)")
    labels = _strs(obj.get("labels"), "labels")
    fp = str(obj.get("fingerprint") or "")
    if not _FP.match(fp):
        # Alertmanager always sends one; derive a stable one from the labels for hand-made payloads.
        import hashlib

        fp = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
    return Alert(fingerprint=fp, status=status, labels=labels, annotations=_strs(obj.get("annotations"), "annotations"),
                 starts_at=str(obj.get("startsAt") or "")[:64], ends_at=str(obj.get("endsAt") or "")[:64],
                 generator_url=str(obj.get("generatorURL") or "")[:2000])


def parse_webhook(body: bytes) -> list[Alert]:
    """The alerts of an Alertmanager webhook body; :class:`ConfigError` for anything else."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"the request body is not JSON ({exc})", hint="send Alertmanager's webhook JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("alerts"), list):
        raise ConfigError("the request body has no 'alerts' list", hint="send Alertmanager's webhook JSON (version 4)")
    if str(doc.get("version", "4")) != "4":
        raise ConfigError(f"webhook version {doc.get('version')!r} is not supported", hint="Alertmanager sends version 4")
    if len(doc["alerts"]) > MAX_ALERTS:
        raise ConfigError(f"{len(doc['alerts'])} alerts in one notification (at most {MAX_ALERTS})",
                          hint="set max_alerts in the webhook config")
    return [_alert(a) for a in doc["alerts"]]


def write_alert(folder: str | os.PathLike[str], alert: Alert) -> Path:
    """``alert.json``: the alert that started this incident."""
    return write_json(Path(folder) / "alert.json", {**alert.to_dict(), "received_at": datetime.now(UTC).isoformat()})


def record_event(folder: str | os.PathLike[str], kind: str, what: str, *, evidence: str = "alerts.jsonl",
                 at: datetime | None = None) -> None:
    """Append one event to the incident's ``alerts.jsonl`` (0600; the file is small and rewritten whole)."""
    path = Path(folder) / "alerts.jsonl"
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    line = json.dumps({"time": (at or datetime.now(UTC)).isoformat(), "kind": kind, "what": what,
                       "evidence": evidence}, sort_keys=True)
    write_private(path, old + line + "\n")


def alert_time(text: str) -> datetime | None:
    """An alert's RFC 3339 time (Alertmanager writes nanoseconds), or None."""
    if not text or text.startswith("0001-"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        return None
    frac = (m.group(2) or "")[:7]
    try:
        return datetime.fromisoformat(m.group(1) + frac + m.group(3).replace("Z", "+00:00"))
    except ValueError:
        return None
