"""Find and start a real ZeptoClaw gateway binary on loopback (REAL-GATEWAY.md's recipe).

>>> with RealGatewayProcess.start(locate_real_gateway(), workdir) as gw:
...     gw.port, gw.pid, gw.log_path

The binary runs with a clean environment (``env -i`` style), a private HOME holding ``.zeptoclaw/``,
``GATEWAY_BIND=127.0.0.1`` (its own default is every interface), a free port, a throwaway token and
``ZEPTO_MEMORY_SECS=0`` (no 30-minute child process). Its stderr (the log, which starts with a banner that
prints the tokens in clear) goes to ``log_path``; nothing zcnb writes may copy that banner.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ..config import Secret
from ..exceptions import ActionTimeout, ConfigError

__all__ = ["ENV_BINARY", "RealGatewayProcess", "default_cache_binary", "locate_real_gateway", "real_gateway_env",
           "real_gateway_service"]

ENV_BINARY = "ZCNB_REAL_GATEWAY"
BINARY_NAME = "zeptoclaw-gateway"


def default_cache_binary() -> Path:
    """Where ``.ci/build-real-gateway`` leaves the binary by default."""
    cache = os.environ.get("ZCNB_REAL_GATEWAY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zcnb-real-gateway")
    return Path(cache) / "bin" / BINARY_NAME


def locate_real_gateway(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The real gateway binary: ``path``, else ``$ZCNB_REAL_GATEWAY``, else the build cache; None if absent.

    A given ``path`` (or the variable) that is not an executable file is an error, not a silent fallback.
    """
    given = str(path) if path is not None else os.environ.get(ENV_BINARY) or None
    if given:
        exe = Path(given).expanduser()
        if not exe.is_file() or not os.access(exe, os.X_OK):
            where = "--real/--gateway-binary" if path is not None else f"${ENV_BINARY}"
            raise ConfigError(f"{where}: {exe} is not an executable file",
                              hint="build it with: bash .ci/build-real-gateway (prints the binary's path)")
        return exe.resolve()
    cached = default_cache_binary()
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which(BINARY_NAME)
    return Path(found).resolve() if found else None


def real_gateway_env(home: Path, port: int, token: str | Secret) -> dict[str, str | Secret]:
    """The environment REAL-GATEWAY.md starts the binary with (loopback, private HOME, no memory loop)."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "WORKSPACE": str(home / "workspace"),
            "NVIDIA_API_KEY": "unused", "GATEWAY_BIND": "127.0.0.1", "GATEWAY_PORT": str(port),
            "GATEWAY_AUTH_TOKEN": token, "ZEPTO_MEMORY_SECS": "0"}


def _prepare_home(home: Path) -> None:
    (home / ".zeptoclaw").mkdir(parents=True, exist_ok=True)
    (home / "workspace").mkdir(exist_ok=True)


def real_gateway_service(name: str, binary: str | os.PathLike[str], *, run_dir: str | os.PathLike[str],
                         token: Secret, port: int | None = None, stop_method: str = "term") -> Any:
    """A :class:`zcnb.service.SupervisedService` for the real binary (health with the token; loopback only).

    ``stop_method="term"`` is what a plain supervisor does (SIGTERM, SIGKILL after the timeout: the real
    gateway ignores SIGTERM, so its leak report is lost); ``"clean"`` makes its accept() fail so it exits.
    """
    from ..service.base import HealthCheck
    from ..service.supervisor import SupervisedService

    d = Path(run_dir)
    home = d / f"{name.removesuffix('.service')}-home"
    _prepare_home(home)
    port = port or _free_port()
    return SupervisedService(name=name, argv=(str(Path(binary)),), pid_file=d / f"{name}.pid",
                             log_file=d / f"{name}.log", cwd=home, env=real_gateway_env(home, port, token),
                             health=HealthCheck(f"http://127.0.0.1:{port}/health", needs_token=True),
                             stop_method=stop_method)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RealGatewayProcess:
    """A running real gateway started by :meth:`start`; :meth:`stop` (or ``with``) kills it by pid."""

    proc: subprocess.Popen[bytes]
    binary: Path
    port: int
    home: Path
    log_path: Path
    pid_file: Path
    token: Secret = field(repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, binary: str | os.PathLike[str], workdir: str | os.PathLike[str], *, port: int | None = None,
              token: str | None = None, log_path: str | os.PathLike[str] | None = None,
              pid_file: str | os.PathLike[str] | None = None, name: str = "gw",
              ready_timeout_s: float = 30.0) -> RealGatewayProcess:
        """Start ``binary`` on 127.0.0.1 (see the module docstring) and wait until it listens.

        The log file is opened for appending, so a caller may add lines of its own; the pid file is written
        as soon as the process exists, before it listens.
        """
        exe = Path(binary)
        work = Path(workdir)
        home = work / f"{name}-home"
        _prepare_home(home)
        port = port or _free_port()
        tok = token or secrets.token_hex(16)
        env = {k: str(v) for k, v in real_gateway_env(home, port, tok).items()}
        log = Path(log_path) if log_path else work / f"{name}.log"
        pidf = Path(pid_file) if pid_file else work / f"{name}.pid"
        with log.open("ab") as fh:
            proc = subprocess.Popen([str(exe)], cwd=home, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
        pidf.write_text(f"{proc.pid}\n")
        gw = cls(proc, exe, port, home, log, pidf, Secret(tok))
        try:
            gw.wait_listening(ready_timeout_s)
        except BaseException:
            gw.stop()
            raise
        return gw

    def wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while b"listening on" not in self.log_path.read_bytes():
            code = self.proc.poll()
            if code is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-600:]
                tail = tail.replace(self.token.reveal(), "<redacted>")
                why = f"exited with code {code}" if code is not None else f"did not listen within {timeout_s:.0f} s"
                raise ActionTimeout(f"the real gateway {self.binary} {why}; end of its log: {tail}",
                                    hint="check REAL-GATEWAY.md: HOME/.zeptoclaw must exist, the port must be free")
            time.sleep(0.05)

    def stop_clean(self, timeout_s: float = 30.0) -> Any:
        """The clean stop (:func:`zcnb.leaks.cleanstop.clean_stop`): the leak report is printed to the log."""
        from ..leaks.cleanstop import clean_stop

        res = clean_stop(self.pid, port=self.port, timeout_s=timeout_s)
        self.proc.wait(timeout=10)
        return res

    def stop(self) -> int | None:
        """SIGKILL by pid (SIGTERM does not stop this binary); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
