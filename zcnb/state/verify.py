"""Verify a backup (or the live state) before anything is touched."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import StateError
from .tree import Entry, content_hash, file_sha256, hash_entries, symlink_problems, tree_digest, walk_tree

__all__ = ["MANIFEST_NAMES", "VerifyResult", "check_state", "content_root", "detect_layout", "read_manifest",
           "verify_backup"]

#: Checksum files recognised in a backup's top folder (``sha256sum`` format); zcnb writes the first.
MANIFEST_NAMES = ("MANIFEST.sha256", "MANIFEST", "SHA256SUMS", "sha256sums.txt")
_HOME_ENTRIES = ("config.json", "workspace", "sessions")
_STATE_ENTRIES = ("sessions", "memory", "skills", "metadata.json")


def detect_layout(path: Path) -> str:
    """``runbook`` (``<dated>/state/``), ``zeptoclaw-home`` (plain ``~/.zeptoclaw`` copy), ``state`` or ``unknown``."""
    if (path / "state").is_dir() and not (path / "state").is_symlink():
        return "runbook"
    if any(os.path.lexists(path / e) for e in _HOME_ENTRIES[:1]) or (
            (path / "workspace").is_dir() and (path / "sessions").is_dir()):
        return "zeptoclaw-home"
    if any(os.path.lexists(path / e) for e in _STATE_ENTRIES):
        return "state"
    return "unknown"


def content_root(path: Path, layout: str) -> Path:
    """The folder that a restore copies into the state dir."""
    return path / "state" if layout == "runbook" else path


def read_manifest(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style manifest: ``<hex>  <relpath>`` per line."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise StateError(f"{path.name} line {n} is not '<sha256>  <path>'", hint="fix or remove the manifest", path=str(path))
        out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_backup` found; ``ok`` only when ``problems`` is empty."""

    path: Path
    layout: str
    content_path: Path
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    file_count: int = 0
    size_bytes: int = 0
    json_checked: int = 0
    manifest: str | None = None
    manifest_checked: int = 0
    digest: str = ""
    hashes: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    algo: str = "sha256"  # the hash of ``hashes`` (and so of ``digest``): ``blake3`` or ``sha256``
    link_problems: tuple[str, ...] = ()  # also in ``problems``: symlinks that are absolute or lead outside
    reused_from: str = ""  # when a restore reused an earlier verification (zcnb.state.verified): its start time

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "layout": self.layout, "content_path": str(self.content_path), "ok": self.ok,
            "problems": list(self.problems), "warnings": list(self.warnings), "file_count": self.file_count,
            "size_bytes": self.size_bytes, "json_checked": self.json_checked, "manifest": self.manifest,
            "manifest_checked": self.manifest_checked, "digest": self.digest, "hash": self.algo,
            "reused_verification_of": self.reused_from or None,
        }

    def _repr_html_(self) -> str:
        verdict = "<b style='color:green'>OK</b>" if self.ok else "<b style='color:#b00'>INVALID</b>"
        man = f"{self.manifest} ({self.manifest_checked} checksums matched)" if self.manifest else "none (not required)"
        rows = [(f"<p>Backup <code>{html.escape(str(self.path))}</code> ({self.layout}): {verdict}; "
                 f"{self.file_count} files, {self.size_bytes} bytes, {self.json_checked} JSON files parsed; "
                 f"manifest: {html.escape(man)}</p>")]
        for title, items in (("Problems", self.problems), ("Warnings", self.warnings)):
            if items:
                rows.append(f"<p>{title}:</p><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        return "".join(rows)


def _json_problem(e: Entry, data: bytes) -> str | None:
    try:
        json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{e.rel} is not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]}); truncated or corrupt"
    return None


def _scan(content: Path, algo: str, listed: set[str]) -> tuple[list[str], list[str], dict[str, Any]]:
    """One pass over ``content``: symlinks checked, every file read once (hashed with ``algo``; JSON files also
    parsed; files in ``listed``, named by a manifest, also hashed with sha256 from the same bytes)."""
    info: dict[str, Any] = {"files": 0, "bytes": 0, "json": 0, "hashes": {}, "links": [], "sha256": {}}
    problems: list[str] = []
    try:
        entries = walk_tree(content)
    except OSError as exc:
        return [f"cannot read {exc.filename}: {exc.strerror}"], [], {**info, "failed": True}
    except StateError as exc:
        return [exc.message], [], {**info, "failed": True}
    info["links"] = symlink_problems(content, entries=entries)
    problems += info["links"]
    json_problems: list[str] = []

    def on_bytes(e: Entry, data: bytes) -> None:
        info["json"] += 1
        bad = _json_problem(e, data)
        if bad:
            json_problems.append(bad)

    try:
        info["hashes"] = hash_entries(entries, on_bytes=on_bytes, want=lambda e: e.rel.endswith(".json"), algo=algo,
                                      sha256_of=lambda e: e.rel in listed, sha256_out=info["sha256"])
    except OSError as exc:
        return problems + [f"cannot read {exc.filename}: {exc.strerror}"], [], {**info, "failed": True}
    files = [e for e in entries if e.kind == "f"]
    info["files"], info["bytes"] = len(files), sum(e.size for e in files)
    return problems + sorted(json_problems), [], info


def _check_tree(root: Path, content: Path, layout: str, algo: str,
                listed: set[str]) -> tuple[list[str], list[str], dict[str, Any]]:
    if not content.is_dir():
        return [f"{content} is missing or not a folder"], [], {"files": 0, "bytes": 0, "json": 0, "hashes": {},
                                                               "links": [], "sha256": {}}
    problems, warnings, info = _scan(content, algo, listed)
    if info.get("failed"):
        return problems, warnings, info
    if not info["files"]:
        problems.append(f"{content} holds no files (empty)")
    if layout == "runbook":
        if not (root / "commit.txt").is_file():
            warnings.append("commit.txt is missing: the backup's gateway version is unknown")
        missing = [e for e in _STATE_ENTRIES if not os.path.lexists(content / e)]
        if missing and info["files"]:
            warnings.append(f"state/ lacks the usual entries: {', '.join(missing)}")
    elif layout == "zeptoclaw-home":
        missing = [e for e in _HOME_ENTRIES if not os.path.lexists(content / e)]
        if "config.json" in missing:
            problems.append("config.json is missing: not a usable ~/.zeptoclaw copy")
        if missing:
            warnings.append(f"missing the usual ~/.zeptoclaw entries: {', '.join(missing)}")
    elif layout == "unknown":
        problems.append("not a recognised backup: expected state/ (runbook layout) or config.json/workspace/sessions (~/.zeptoclaw copy)")
    return problems, warnings, info


def _find_manifest(root: Path) -> tuple[str, Path] | None:
    for name in MANIFEST_NAMES:
        mpath = root / name
        if mpath.is_file():
            return name, mpath
    return None


def _manifest_listed(root: Path, content: Path) -> set[str]:
    """Paths (relative to ``content``) of the content files the backup's manifest lists: the scan hashes them
    with sha256 too, so they are read once. Empty when there is no readable manifest (checked later)."""
    found = _find_manifest(root)
    if found is None:
        return set()
    try:
        entries = read_manifest(found[1])
    except (StateError, OSError, UnicodeDecodeError):
        return set()
    root_abs, content_abs = os.path.abspath(root), os.path.abspath(content)
    out = set()
    for rel in entries:
        p = os.path.normpath(os.path.join(root_abs, rel))
        if os.path.commonpath([p, content_abs]) == content_abs and p != content_abs:
            out.add(os.path.relpath(p, content_abs).replace(os.sep, "/"))
    return out


def _check_manifest(root: Path, problems: list[str], warnings: list[str], content: Path | None = None,
                    hashes: Mapping[str, str] | None = None) -> tuple[str | None, int]:
    """Compare the manifest's checksums; files of ``content`` already hashed with sha256 (``hashes``) are not
    read again."""
    found = _find_manifest(root)
    if found is None:
        return None, 0
    name, mpath = found
    try:
        entries = read_manifest(mpath)
    except (StateError, OSError, UnicodeDecodeError) as exc:
        problems.append(f"manifest {name} is unreadable: {exc}")
        return name, 0
    root_abs = os.path.abspath(root)
    content_abs = os.path.abspath(content) if content is not None else None
    matched = 0
    for rel, expected in entries.items():
        p = os.path.normpath(os.path.join(root_abs, rel))
        if os.path.commonpath([p, root_abs]) != root_abs:
            problems.append(f"manifest {name} names a path outside the backup: {rel}")
            continue
        known = None
        if content_abs is not None and hashes and os.path.commonpath([p, content_abs]) == content_abs and p != content_abs:
            known = hashes.get(os.path.relpath(p, content_abs).replace(os.sep, "/"))
        if known is not None and known.startswith("f:"):
            got = known[2:]  # hashed by the content scan, from the same bytes
        elif not os.path.isfile(p):
            problems.append(f"{rel} is listed in {name} but missing")
            continue
        else:
            got = file_sha256(Path(p))
        if got != expected:
            problems.append(f"{rel} does not match its checksum in {name} (changed or corrupt)")
        else:
            matched += 1
    return name, matched


def verify_backup(path: str | os.PathLike[str], *, layout: str | None = None,
                  algo: str | None = None) -> VerifyResult:
    """Check a backup: readable, non-empty, JSON parses, expected entries, manifest checksums if present.

    Every file is hashed with ``algo`` (default :func:`zcnb.state.tree.content_hash`: blake3 when installed, else
    sha256); files a manifest lists are also hashed with sha256 (manifests are ``sha256sum`` format), same read.
    """
    root = Path(path)
    if not root.is_dir():
        raise StateError(f"backup {root} does not exist or is not a folder", hint="pick one from `zcnb backup list`", path=str(root))
    layout = layout or detect_layout(root)
    algo = algo or content_hash()
    content = content_root(root, layout)
    listed = _manifest_listed(root, content) if layout != "state" else set()
    problems, warnings, info = _check_tree(root, content, layout, algo, listed)
    manifest, matched = (_check_manifest(root, problems, warnings, content, info["sha256"]) if layout != "state"
                         else (None, 0))
    hashes = info["hashes"]
    return VerifyResult(
        path=root, layout=layout, content_path=content, problems=tuple(problems), warnings=tuple(warnings),
        file_count=info["files"], size_bytes=info["bytes"], json_checked=info["json"], manifest=manifest,
        manifest_checked=matched, digest=tree_digest(hashes) if hashes else "", hashes=hashes, algo=algo,
        link_problems=tuple(info["links"]),
    )


def check_state(state_dir: str | os.PathLike[str]) -> VerifyResult:
    """Assess the live state dir with the same checks (e.g. to see that it is corrupt)."""
    return verify_backup(state_dir, layout="state")
