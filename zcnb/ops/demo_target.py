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
from collections.abc import Callable, Sequence
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
                             health=HealthCheck(f"http://127.0.0.1:{port}/health", needs_token=True),
                             # the real profile, like the real gateway, ignores SIGTERM until accept() fails
                             stop_method="clean" if profile == "real" and not ignore_sigterm else "term")


@dataclass(frozen=True)
class DemoTarget:
    """A started, supervised simulated gateway for stage 02's default run; stopped at exit or by :meth:`close`."""

    manager: ProcessSupervisorBackend
    unit: str
    url: str
    token: Secret
    run_dir: Path
    shutdown: Callable[[], object] | None = None  # a weakref.finalize: stops the units once

    def close(self) -> None:
        """Stop the units (and remove the temp run folder zcnb made for them); runs once."""
        if self.shutdown is not None:
            self.shutdown()
        else:
            self.manager.close()

    def _repr_markdown_(self) -> str:
        return f"supervised simulated gateway `{self.unit}` at `{self.url}` (run dir `{self.run_dir}`)"


def mitigation_demo_target(run_dir: str | os.PathLike[str] | None = None, *, profile: str = "real",
                           leak: str = "linear", units: Sequence[str] = ("zeptoclaw-gateway.service",
                                                                         "zeptoclaw-webhook.service")) -> DemoTarget:
    """Start simulated units under the supervisor in a temp folder (cleanup registered for interpreter exit)."""
    # A temp run folder (its logs hold the simulator's throwaway token) is removed after the units stop:
    # by close(), or at interpreter exit.
    d = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="zcnb-mitigate-"))
    token = Secret(secrets.token_urlsafe(24))
    services = [simulator_service(u, run_dir=d, token=token, profile=profile, leak=leak if i == 0 else "none",
                                  exit_with_parent=True)
                for i, u in enumerate(units)]
    manager = ProcessSupervisorBackend(services, run_dir=d)
    done = weakref.finalize(manager, _shutdown, manager, None if run_dir else d)
    for u in units:
        manager.start(u, timeout_s=10.0)
        check_health(manager, u, token=token, timeout_s=10.0)
    hc = services[0].health
    return DemoTarget(manager, units[0], hc.url if hc else "", token, d, done)


def _shutdown(manager: ProcessSupervisorBackend, scratch: Path | None) -> None:
    """Stop the simulated units, then remove the temp run folder zcnb made for them (None: not ours)."""
    try:
        manager.close()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
