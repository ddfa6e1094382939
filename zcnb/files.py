"""Files: private, atomic writing (folders 0700, files 0600, JSON with a stable layout), and reading an input
file with one clear error for each way it can fail (:func:`read_input`, :func:`open_input`)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from .exceptions import ConfigError, ZcnbError

__all__ = ["dumps_json", "ensure_private_dir", "make_private_dir", "make_unique_dir", "open_input", "read_input",
           "read_json", "scratch_dir", "unique_path", "write_json", "write_private"]


def make_private_dir(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` and any missing parents, each mode 0700; True when ``path`` itself was created.

    Only folders created here are chmodded: an existing folder keeps its mode (``--incidents-dir /tmp``
    must not turn /tmp into 0700), and an existing symlink to a folder is accepted as it is.
    """
    p = Path(path)
    try:
        os.mkdir(p, 0o700)
    except FileExistsError:
        if not p.is_dir():
            raise
        return False
    except FileNotFoundError:
        if p.parent == p:
            raise
        make_private_dir(p.parent)
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:  # created by somebody else meanwhile: not ours to chmod
            if not p.is_dir():
                raise
            return False
    os.chmod(p, 0o700)  # the umask may have cleared bits of a folder we just made; it cannot add any
    return True


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) mode 0700; an existing folder is left as it is. Returns ``path``."""
    p = Path(path)
    make_private_dir(p)
    return p


def unique_path(path: str | os.PathLike[str]) -> Path:
    """``path``, or ``path-2``, ``path-3`` ... : the first name nothing (not even a dangling link) has yet."""
    p = Path(path)
    candidate, n = p, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = p.with_name(f"{p.name}-{n}")
    return candidate


def make_unique_dir(path: str | os.PathLike[str]) -> Path:
    """Create a new folder (0700) at ``path`` or ``path-2``, ``path-3`` ...; never reuses an existing one.

    For kept copies named per second: a second run in the same second gets its own folder.
    """
    p = Path(path)
    make_private_dir(p.parent)
    candidate, n = p, 1
    while True:
        try:
            os.mkdir(candidate, 0o700)
        except FileExistsError:
            n += 1
            candidate = p.with_name(f"{p.name}-{n}")
            continue
        os.chmod(candidate, 0o700)
        return candidate


def scratch_dir(prefix: str) -> Path:
    """A new private (0700) temp folder that is removed when the interpreter exits (a notebook kernel included).

    For throwaway copies (replays of the bundled samples, simulated gateways' run folders): nothing of them
    is left in ``$TMPDIR``. Anything worth keeping belongs in the incident folder instead.
    """
    import atexit
    import shutil

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def write_private(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (tmp + rename) with mode 0600."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def _default(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def dumps_json(obj: Any) -> str:
    """``obj`` as indented, strict JSON (NaN/Inf become null; results, paths, times and numpy scalars converted)."""
    return json.dumps(_nan_to_none(obj), default=_default, indent=2, sort_keys=False, allow_nan=False)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (0600, atomic). NaN becomes null."""
    return write_private(path, dumps_json(obj) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict) and not isinstance(obj, type):  # results at any depth: their NaNs become null too
        return _nan_to_none(to_dict())
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def open_input(path: str | os.PathLike[str], *, what: str, error: type[ZcnbError] = ConfigError,
               hint: str = "check the path", folder_hint: str | None = None) -> BinaryIO:
    """Open the input file ``path`` for reading (binary), or raise ``error`` saying what is wrong with it.

    ``what`` names the file in the message (``"leak report file"``): it does not exist, it is a folder
    (``folder_hint`` then replaces ``hint``), it is not readable, or another OS error. The caller closes it.
    """
    p = Path(path)
    try:
        return open(p, "rb")  # noqa: SIM115  the caller owns the handle (streaming readers)
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist", hint=hint, path=str(p)) from None
    except IsADirectoryError:
        raise error(f"{p} is a folder, not a {what}", hint=folder_hint or hint, path=str(p)) from None
    except PermissionError:
        raise error(f"{what} {p} is not readable (permission denied)", hint="run as a user who can read it",
                    path=str(p)) from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}", hint=hint, path=str(p)) from None


def read_input(path: str | os.PathLike[str], *, what: str, error: type[ZcnbError] = ConfigError,
               hint: str = "check the path", folder_hint: str | None = None) -> bytes:
    """The bytes of the input file ``path``, or ``error`` saying what is wrong with it (see :func:`open_input`)."""
    with open_input(path, what=what, error=error, hint=hint, folder_hint=folder_hint) as fh:
        try:
            return fh.read()
        except OSError as exc:  # e.g. EIO, or EISDIR on systems that open folders
            raise error(f"cannot read {what} {path}: {exc.strerror or exc}", hint=hint, path=str(path)) from None
