"""Stage 01 (confirm the leak): the few calls the notebook makes, with the mode choice in one place.

Modes: *replay* (the incident folder already holds ``samples.csv``: the bundled sample
by default), *live* (preflight, then sample a running gateway into the folder), and
*fleet* (read history for many instances from Prometheus).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ..exceptions import ConfigError
from ..incident import Incident

__all__ = ["Collected", "assess", "collect", "explorer", "fleet", "fleet_figure", "memory_figure", "run_preflight"]


@dataclass(frozen=True)
class _Note:
    text: str

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.text)}</p>"

    def __repr__(self) -> str:
        return self.text


def run_preflight(incident: Incident, *, live: bool, url: str = "", token_env: str = "", unit: str = "",
                  pattern: str = "", pid: int = 0, unauth_probe: bool = False) -> Any:
    """Check the runbook's assumptions against the live target (skipped, and said so, in replay).

    Empty ``url``/``token_env``/``unit``/``pattern`` mean "from the settings" (config file, ``ZCNB_*``).
    ``unauth_probe`` sends one token-less /metrics request (each leaks memory on the real gateway).
    """
    if not live:
        return _Note("Preflight skipped: replaying recorded samples (set live=True to check a running gateway).")
    _own_folder(incident)
    from ..collect.preflight import preflight

    settings = _settings(token_env=token_env, unit=unit, pattern=pattern)
    result = preflight(settings, url=url or None, pid=pid or None, pattern=pattern or None, probe_unauth=unauth_probe)
    incident.write_json("preflight", result.to_dict())
    return result


def _settings(*, token_env: str = "", unit: str = "", pattern: str = "") -> Any:
    """The settings with the notebook's non-empty values on top (an empty parameter keeps the setting)."""
    from ..config import load_settings

    given: dict[str, Any] = {"token_env": token_env, "unit": unit, "process_pattern": pattern}
    return load_settings(**{k: v for k, v in given.items() if v and v.strip()})


def _own_folder(incident: Incident) -> None:
    # The replay copy already holds the bundled recording: live samples would be appended to another
    # process's history (and mixed into the verdict), so live mode needs a folder of its own.
    if incident.replay:
        raise ConfigError("live mode needs its own incident folder (incident_dir is empty: that replays the bundled "
                          "sample, and live samples would be mixed into its recording)",
                          hint="set incident_dir to a new folder, e.g. ~/.local/share/zeptoclaw/incidents/<date>-leak")


@dataclass(frozen=True)
class Collected:
    """The samples of this stage, and where they came from."""

    df: pd.DataFrame
    mode: str
    detail: str

    def _repr_html_(self) -> str:
        n = int((self.df["event"] == "").sum()) if "event" in self.df else len(self.df)
        span = ""
        if len(self.df):
            span = f" from {self.df['timestamp'].min():%Y-%m-%d %H:%M:%S} to {self.df['timestamp'].max():%H:%M:%S} UTC"
        return (f"<p><b>{n} samples</b> ({html.escape(self.mode)}){span}. {html.escape(self.detail)}</p>")


def collect(incident: Incident, preflight_result: Any = None, *, live: bool = False, url: str = "",
            token_env: str = "", pid: int = 0, pattern: str = "", unit: str = "", sources: str = "auto",
            interval_s: float = 30.0, duration_s: float = 3600.0, metrics_interval_s: float = 0.0,
            progress: bool = True) -> Collected:
    """Replay ``samples.csv`` from the incident folder, or sample the live gateway into it.

    Empty ``url``/``token_env``/``pattern`` and ``metrics_interval_s=0`` mean "from the settings". /metrics
    is scraped without a token only when preflight's opt-in probe found it answers without one.
    """
    from ..collect.sampling import read_samples

    path = incident.path("samples")
    if not live:
        if not path.exists():
            raise ConfigError(f"no samples to replay in {incident.root}",
                              hint="pass live=True to sample a running gateway, or an incident_dir holding samples.csv")
        return Collected(read_samples(path), "replay", f"Recorded samples from {path.name}.")
    _own_folder(incident)
    from ..collect.sampling import sample
    from ..config import gateway_token, token_source

    settings = _settings(token_env=token_env, pattern=pattern)
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources != "auto" else None
    if chosen is None:
        chosen = list(preflight_result.choose_sources()) if hasattr(preflight_result, "choose_sources") else ["psutil"]
    open_metrics = getattr(preflight_result, "metrics_needs_token", None) is False  # probed: no 401 path to leak in
    summary = sample(
        path, pid=pid or None, pattern=None if pid or unit else settings.process_pattern, unit=unit or None,
        url=(url or settings.base_url) if "metrics" in chosen else None, token=gateway_token(settings=settings),
        sources=chosen, interval_s=interval_s, duration_s=duration_s,
        metrics_interval_s=metrics_interval_s or settings.metrics_min_interval_s, append=path.exists(),
        progress=progress, timeout_s=settings.http_timeout_s, unauth_metrics=open_metrics,
        token_hint=f"set the gateway token in the {token_source(settings=settings)}",
    )
    return Collected(read_samples(path), "live", f"Sources: {', '.join(chosen)}. {summary.to_dict().get('notes', '')}")


def assess(incident: Incident, collected: Collected, *, limit_bytes: float = 0) -> Any:
    """Assess the leak, store ``assessment.json`` (with the detection time) and return the assessment."""
    from ..analysis import assess_leak

    limit, source = (float(limit_bytes), "parameter") if limit_bytes else (None, None)
    pre = incident.read_json("preflight") if limit is None and incident.has("preflight") else {}
    if pre.get("memory_max_bytes"):
        # The unit's MemoryMax, as preflight found it, outranks "available memory" (TARGET.md).
        limit, source = float(pre["memory_max_bytes"]), f"MemoryMax of {pre.get('unit') or 'the unit'} (preflight)"
    a = assess_leak(collected.df, limit_bytes=limit, limit_source=source)
    incident.write_json("assessment", {**a.to_dict(), "detected_at": datetime.now(UTC).isoformat()})
    return a


def memory_figure(incident: Incident, collected: Collected, assessment: Any) -> Any:
    """The memory-over-time figure, also saved as ``figures/memory.png``."""
    from ..viz.display import figure_image
    from ..viz.memory import plot_memory

    return figure_image(plot_memory(collected.df, assessment), alt="memory over time",
                        path=incident.figures / "memory.png")


def explorer(collected: Collected, assessment: Any) -> Any:
    """The interactive memory explorer (time window, source) over the collected samples."""
    from ..viz.widgets import memory_explorer

    return memory_explorer(collected.df, assessment)


def fleet(incident: Incident, *, prometheus_url: str, promql: str, since: str, step: str,
          limit_bytes: float = 0) -> Any:
    """Fleet mode: assess every instance from Prometheus history (skipped when no URL is given).

    An empty ``promql`` is ``zcnb fleet``'s default query, ``zcnb.config.DEFAULT_FLEET_QUERY``, or the exporter's
    ``EXPORTER_FLEET_QUERY`` when that has no series (the view's notes say which).
    """
    if not prometheus_url:
        return _Note("Fleet mode off (set prometheus_url to read many gateways' history from Prometheus).")
    from ..config import DEFAULT_FLEET_QUERY, EXPORTER_FLEET_QUERY
    from ..fleet.view import fleet_from_prometheus
    from ..units import parse_duration

    end = datetime.now(UTC).timestamp()
    query = promql.strip()
    view = fleet_from_prometheus(prometheus_url, query or DEFAULT_FLEET_QUERY, start=end - parse_duration(since),
                                 end=end, step=step, limit_bytes=float(limit_bytes) if limit_bytes else None,
                                 fallback_query=None if query else EXPORTER_FLEET_QUERY)
    incident.write_json("fleet", view.to_dict())
    return view


def fleet_figure(incident: Incident, view: Any) -> Any:
    """Small multiples of every instance (nothing to draw outside fleet mode)."""
    if isinstance(view, _Note):
        return None  # nothing to show outside fleet mode (the note above says so)
    from ..viz.display import figure_image
    from ..viz.fleet import plot_fleet

    return figure_image(plot_fleet(view), alt="fleet memory", path=incident.figures / "fleet.png")
