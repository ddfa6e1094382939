"""The sample data tree shipped in the package (``state/`` + ``backups/``): replays of stages 04 and 06."""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["copy_sample_data", "sample_data_dir"]


def sample_data_dir() -> Path:
    """The read-only sample data dir shipped in the package (``state/`` + ``backups/``)."""
    return Path(str(resources.files("zcnb") / "data" / "sample_state"))


def copy_sample_data(dest: str | os.PathLike[str] | None = None) -> Path:
    """Copy the sample tree into ``dest`` (default: a new temp folder, removed when the process exits) and return
    the copy's path."""
    if dest:
        root = Path(dest)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="zcnb-state-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # a replay's sandbox: gone when the process ends
        root = tmp / "zeptoclaw"
    shutil.copytree(sample_data_dir(), root)
    for p in root.glob("backups/*/zeptoclaw-gateway"):
        # Package installs may drop the exec bit; the sample binary is a shell script meant to run.
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    for p in [root, root / "state", root / "backups"]:
        p.chmod(0o700)
    return root
