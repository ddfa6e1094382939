"""Service control (stages 02 and 06): systemd --user and a process supervisor behind one protocol.

Backends: :class:`SystemdUserBackend`, :class:`ProcessSupervisorBackend`. Actions (dry run unless confirmed):
:func:`restart_service`, :func:`set_debug_logging`. Health: :func:`wait_healthy`. Work that spans the service and
other areas (rollback, the post-restart watch) lives in :mod:`zcnb.ops`.
"""

from __future__ import annotations

from .backends import choose_backend, make_manager
from .base import HealthCheck, ServiceManager, ServiceStatus, StepOutcome
from .control import check_health, plan_debug_logging, plan_restart, restart_service, set_debug_logging
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
    "restart_service",
    "set_debug_logging",
    "wait_healthy",
]
