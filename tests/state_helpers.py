"""Test helpers shared by the state tests: the plan-then-confirm call and a small real tmpfs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zcnb.actions import ActionResult


def apply(fn: Callable[..., ActionResult], *args: Any, **kw: Any) -> ActionResult:
    """Dry run first, then the confirmed run with its plan id: the way a user does it."""
    plan = fn(*args, **kw)
    assert plan.dry_run and plan.outcome == "planned", plan
    return fn(*args, execute=True, confirm=plan.plan_id, **kw)


def tmpfs(mnt: Path, *, size: str = "1m") -> Iterator[Path]:
    """Mount a real tmpfs of ``size`` at ``mnt`` (we are root) for a fixture; skip where mount is not permitted."""
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                       check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
