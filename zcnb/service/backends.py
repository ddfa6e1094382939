"""Which service manager to act on: systemd user units, the process supervisor, or the offline replay."""

from __future__ import annotations

from ..config import load_settings
from ..exceptions import ConfigError
from .base import ServiceManager
from .supervisor import ProcessSupervisorBackend
from .systemd import SystemdUserBackend, default_health_checks

__all__ = ["choose_backend", "make_manager"]


def choose_backend(backend: str, *, supervisor_file: str = "", live: bool = False) -> str:
    """Resolve a notebook's ``backend`` parameter: ``"systemd"``, ``"supervisor"`` or ``"replay"``.

    ``auto`` means the supervisor when a services file is given, systemd in a live run, and the
    offline replay otherwise. A live run never falls back to the replay's simulated gateway:
    ``supervisor`` without a file is an error there (it would act on something that is not the gateway).
    """
    if backend not in ("auto", "systemd", "supervisor"):
        raise ConfigError(f"unknown backend {backend!r}", hint="use 'auto', 'systemd' or 'supervisor'")
    if backend == "auto":
        return "supervisor" if supervisor_file else ("systemd" if live else "replay")
    if backend == "supervisor" and not supervisor_file:
        if live:
            raise ConfigError("live run with backend 'supervisor' but no supervisor_file",
                              hint="give supervisor_file (JSON written by ProcessSupervisorBackend.to_file), or use "
                                   "backend='systemd' / 'auto' for systemd user units")
        return "replay"
    return backend


def make_manager(backend: str = "systemd", *, supervisor_file: str | None = None, units: tuple[str, ...] | None = None,
                 host: str | None = None, port: int | None = None) -> ServiceManager:
    """``systemd`` (user units) or ``supervisor`` (services described in ``supervisor_file`` JSON).

    ``host``/``port`` of the systemd backend's health checks default to the settings (runbook: 127.0.0.1:18789).
    """
    if backend == "systemd":
        if host is None or port is None:
            settings = load_settings()
            host, port = host or settings.host, port or settings.port
        if units:
            return SystemdUserBackend(units=units, health=default_health_checks(host, port))
        return SystemdUserBackend(health=default_health_checks(host, port))
    if backend == "supervisor":
        if not supervisor_file:
            raise ConfigError("the supervisor backend needs a services file",
                              hint="pass --supervisor-file FILE (JSON written by ProcessSupervisorBackend.to_file)")
        return ProcessSupervisorBackend.from_file(supervisor_file)
    raise ConfigError(f"unknown backend {backend!r}", hint="use 'systemd' or 'supervisor'")
