"""Service control (stages 02 and 06): systemd --user and a process supervisor behind one protocol.

Backends: :class:`SystemdUserBackend`, :class:`ProcessSupervisorBackend`. Actions (dry run unless confirmed):
:func:`restart`, :func:`set_debug_logging`. Health: :func:`wait_healthy`. Work that spans the service and
other areas (rollback, the post-restart watch) lives in :mod:`zcnb.ops`.
"""

from __future__ import annotations

from .base import HealthCheck, ServiceManager, ServiceStatus, StepOutcome
from .control import check_health, plan_debug_logging, plan_restart, restart, set_debug_logging
from .health import HealthResult, probe_health, wait_healthy
from .supervisor import ProcessSupervisorBackend, SupervisedService
from .systemd import SystemdUserBackend

__all__ = [
    "HealthCheck",
    "HealthResult",
    "ProcessSupervisorBackend",
    "ServiceManager",
    "ServiceStatus",
    "StepOutcome",
    "SupervisedService",
    "SystemdUserBackend",
    "check_health",
    "choose_backend",
    "make_manager",
    "plan_debug_logging",
    "plan_restart",
    "probe_health",
    "restart",
    "set_debug_logging",
    "wait_healthy",
]


def choose_backend(backend: str, *, supervisor_file: str = "", live: bool = False) -> str:
    """Resolve a notebook's ``backend`` parameter: ``"systemd"``, ``"supervisor"`` or ``"replay"``.

    ``auto`` means the supervisor when a services file is given, systemd in a live run, and the
    offline replay otherwise. A live run never falls back to the replay's simulated gateway:
    ``supervisor`` without a file is an error there (it would act on something that is not the gateway).
    """
    from ..exceptions import ConfigError

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
    from ..config import load_settings
    from ..exceptions import ConfigError
    from .systemd import default_health_checks

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
