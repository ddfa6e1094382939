"""The kernels headless stages run in: local IPC sockets in a private temp folder, removed afterwards.

papermill's default kernel listens on loopback TCP ports, and ipykernel then warns on every start that
"Kernel is running over TCP without encryption". A kernel on Unix-domain sockets in a 0700 folder is
reachable only by this user, needs no port, and has nothing to warn about. The folder (connection files
and sockets) is removed when the stage (or the pool) is done, so nothing is left in ``$TMPDIR``.

:class:`KernelPool` starts kernels ahead of time, with the stage helpers already imported, while the
caller does something else (``zcnb demo`` samples the gateway for a minute meanwhile); each stage then
takes one. A kernel is used for one notebook only and shut down after it, so stages share no state.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["KernelPool", "ipc_kernel_manager_class"]

_HISTORY_OFF = "--HistoryManager.hist_file=:memory:"  # what nbclient passes: no history database per kernel


@contextmanager
def ipc_kernel_manager_class() -> Iterator[Any]:
    """A kernel-manager class for papermill (``kernel_manager_class=``) whose kernels use IPC transport with
    their connection file and sockets in a private temp folder; the folder is removed on exit.

    papermill (nbclient) creates, starts and shuts down the kernel itself, as with its default manager.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    folder = Path(tempfile.mkdtemp(prefix="zcnb-kernel-"))  # 0700

    class IpcKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("connection_file")
        def _connection_file_in_private_folder(self) -> str:
            return str(folder / "kernel.json")

    try:
        yield IpcKernelManager
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class KernelPool:
    """``size`` kernels started in the background (IPC transport, ``cwd``, the current environment), each with
    ``preload`` modules imported; :meth:`take` hands one out, :meth:`release` shuts it down after its notebook.

    A kernel that fails to start is skipped (``take`` then returns None and the caller starts its own).
    """

    def __init__(self, size: int, *, cwd: str | os.PathLike[str], kernel_name: str = "python3",
                 preload: Sequence[str] = ()) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="zcnb-kernels-"))  # 0700
        self._ready: list[Any] = []
        self._cond = threading.Condition()
        self._left = size
        self._closed = False
        self._thread = threading.Thread(target=self._start_all, args=(size, str(cwd), kernel_name, tuple(preload)),
                                        name="zcnb-kernel-pool", daemon=True)
        self._thread.start()

    def _start_all(self, size: int, cwd: str, kernel_name: str, preload: tuple[str, ...]) -> None:
        for i in range(size):
            km = None
            try:
                km = self._start_one(i, cwd, kernel_name, preload)
            except Exception:  # noqa: BLE001  a kernel that cannot start: the stage starts its own instead
                km = None
            with self._cond:
                self._left -= 1
                if km is not None:
                    if self._closed:
                        _shutdown(km)
                    else:
                        self._ready.append(km)
                self._cond.notify_all()

    def _start_one(self, i: int, cwd: str, kernel_name: str, preload: tuple[str, ...]) -> Any:
        from jupyter_client.manager import KernelManager

        class HandOutKernelManager(KernelManager):
            """Remembers the clients it gives out, so their channels can be closed after the notebook."""

            handed_out: list[Any]

            def client(self, **kwargs: Any) -> Any:
                c = super().client(**kwargs)
                self.handed_out.append(c)
                return c

        km = HandOutKernelManager(kernel_name=kernel_name, transport="ipc",
                                  connection_file=str(self._folder / f"kernel-{i}.json"))
        km.handed_out = []
        km.start_kernel(cwd=cwd, extra_arguments=[_HISTORY_OFF])
        kc = km.blocking_client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            if preload:
                kc.execute_interactive("import " + ", ".join(preload), store_history=False, timeout=120)
        finally:
            kc.stop_channels()
        km.client_class = "jupyter_client.asynchronous.AsyncKernelClient"  # what nbclient uses on its own
        km.handed_out.clear()  # the preload client is closed
        return km

    def take(self, timeout_s: float = 120.0) -> Any:
        """A started kernel manager (waits for the next one), or None when none is left or it did not start."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._left == 0 or self._closed, timeout=timeout_s)
            return self._ready.pop(0) if self._ready else None

    @staticmethod
    def release(km: Any) -> None:
        """Close the channels a notebook run opened on ``km`` and shut its kernel down."""
        _shutdown(km)

    def close(self) -> None:
        """Shut down the kernels nobody took and remove the pool's folder."""
        with self._cond:
            self._closed = True
            left, self._ready = self._ready, []
            self._cond.notify_all()
        for km in left:
            _shutdown(km)
        self._thread.join(timeout=60)
        shutil.rmtree(self._folder, ignore_errors=True)


def _shutdown(km: Any) -> None:
    for c in getattr(km, "handed_out", []):
        try:
            c.stop_channels()
        except Exception:  # noqa: BLE001, S110  a client that never started: nothing to close
            pass
    try:
        km.shutdown_kernel(now=False)
    except Exception:  # noqa: BLE001  already gone
        km.cleanup_resources()
