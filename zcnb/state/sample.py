"""The sample data tree shipped in the package (``state/`` + ``backups/``): replays of stages 04 and 06."""

from __future__ import annotations

import os
import shutil
import stat
from importlib import resources
from pathlib import Path

from ..files import scratch_dir

__all__ = ["copy_sample_data", "sample_data_dir"]


def sample_data_dir() -> Path:
    """The read-only sample data dir shipped in the package (``state/`` + ``backups/``)."""
    return Path(str(resources.files("zcnb") / "data" / "sample_state"))


def copy_sample_data(dest: str | os.PathLike[str] | None = None) -> Path:
    """Copy the sample tree into ``dest`` (default: a new temp folder, removed when the interpreter exits)."""
    root = Path(dest) if dest else scratch_dir("zcnb-state-") / "zeptoclaw"
    shutil.copytree(sample_data_dir(), root)
    for p in root.glob("backups/*/zeptoclaw-gateway"):
        # Package installs may drop the exec bit; the sample binary is a shell script meant to run.
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    for p in [root, root / "state", root / "backups"]:
        p.chmod(0o700)
    return root
