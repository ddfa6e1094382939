"""The kernel a headless stage runs in: local IPC sockets in a private temp folder, removed afterwards.

papermill's default kernel listens on loopback TCP ports, and ipykernel then warns on every start that
"Kernel is running over TCP without encryption". A kernel on Unix-domain sockets in a 0700 folder is
reachable only by this user, needs no port, and has nothing to warn about. The folder (connection file
and sockets) is removed when the stage is done, so nothing is left in ``$TMPDIR``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ipc_kernel_manager_class"]


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
