"""The simulated gateway under the process supervisor: what stage 02's replay acts on, and ``zcnb demo``.

The simulator (:mod:`zcnb.demo.server`) is started as a command line (``python -m zcnb.demo.server``),
so nothing here imports the demo package.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Secret
from ..service.base import HealthCheck
from ..service.control import check_health
from ..service.supervisor import ProcessSupervisorBackend, SupervisedService

__all__ = ["DemoTarget", "mitigation_demo_target", "simulator_service"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def simulator_service(name: str, *, run_dir: str | os.PathLike[str], token: Secret, port: int | None = None,
                      profile: str = "real", leak: str = "none", ignore_sigterm: bool = False,
                      exit_with_parent: bool = False, extra_args: Sequence[str] = ()) -> SupervisedService:
    """A supervised simulated gateway (``python -m zcnb.demo.server``) on a fixed loopback port."""
    d = Path(run_dir)
    port = port or _free_port()
    argv = [sys.executable, "-m", "zcnb.demo.server", "--name", name.removesuffix(".service"), "--profile", profile,
            "--port", str(port), "--pid-file", str(d / f"{name}.pid"), "--leak", leak, "--rate-limit", "0", *extra_args]
    if ignore_sigterm:
        argv.append("--ignore-sigterm")
    if exit_with_parent:  # a notebook kernel may be killed without running exit hooks: never leave servers behind
        argv.append("--exit-with-parent")
    return SupervisedService(name=name, argv=tuple(argv), pid_file=d / f"{name}.pid", log_file=d / f"{name}.log",
                             env={"GATEWAY_AUTH_TOKEN": token},
                             health=HealthCheck(f"http://127.0.0.1:{port}/health", needs_token=True))


@dataclass(frozen=True)
class DemoTarget:
    """A started, supervised simulated gateway for stage 02's default run; stopped at exit or by :meth:`close`."""

    manager: ProcessSupervisorBackend
    unit: str
    url: str
    token: Secret
    run_dir: Path

    def close(self) -> None:
        self.manager.close()

    def _repr_markdown_(self) -> str:
        return f"supervised simulated gateway `{self.unit}` at `{self.url}` (run dir `{self.run_dir}`)"


def _close(manager: ProcessSupervisorBackend, temp_dir: Path | None) -> None:
    """Stop the simulated units, then remove the temp folder they ran in (when this module made it)."""
    try:
        manager.close()
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def mitigation_demo_target(run_dir: str | os.PathLike[str] | None = None, *, profile: str = "real",
                           leak: str = "linear", units: Sequence[str] = ("zeptoclaw-gateway.service",
                                                                         "zeptoclaw-webhook.service")) -> DemoTarget:
    """Start simulated units under the supervisor in a temp folder (stopped, and the folder removed, at exit)."""
    d = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="zcnb-mitigate-"))
    token = Secret(secrets.token_urlsafe(24))
    services = [simulator_service(u, run_dir=d, token=token, profile=profile, leak=leak if i == 0 else "none",
                                  exit_with_parent=True)
                for i, u in enumerate(units)]
    manager = ProcessSupervisorBackend(services, run_dir=d)
    weakref.finalize(manager, _close, manager, None if run_dir else d)
    for u in units:
        manager.start(u, timeout_s=10.0)
        check_health(manager, u, token=token, timeout_s=10.0)
    hc = services[0].health
    return DemoTarget(manager, units[0], hc.url if hc else "", token, d)
