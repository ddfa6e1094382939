"""The report's files: ``report.html`` exported offline, the incident folder locked down, the incidents index."""

from __future__ import annotations

import html
import os
import stat
from pathlib import Path
from typing import Any

from ..exceptions import OutputWriteError
from ..files import read_json, write_private
from ..units import format_bytes

__all__ = ["NOTEBOOK_ONLY_TAG", "export_html", "index_is_ours", "lock_down", "write_index"]

NOTEBOOK_ONLY_TAG = "zcnb-notebook-only"  # cells with this tag are shown in JupyterLab, left out of report.html


# The lab template minus everything it would fetch from a CDN (require.js, MathJax, mermaid,
# widget managers): a report must open on an offline jump host and must not tell a third
# party that somebody is reading it. The Content-Security-Policy makes that hold for
# anything a future template adds: no network loads at all, images only from data: URIs.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; font-src data:">
{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def export_html(notebook: str | os.PathLike[str], html_path: str | os.PathLike[str], *,
                title: str | None = None) -> Path:
    """Export an executed notebook to standalone HTML: inputs hidden, images embedded, nothing fetched.

    Cells tagged ``zcnb-notebook-only`` (a notebook's introduction for its JupyterLab reader) are left out.

    The page loads nothing from the network (no CDN scripts; a Content-Security-Policy
    forbids any load), so it opens the same on an offline host. ``title`` defaults to
    "ZeptoClaw memory incident <folder name>".
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb_path = Path(notebook)
    nb = nbformat.read(str(nb_path), as_version=4)  # type: ignore[no-untyped-call]  # nbformat has no annotations
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]  # nor has nbconvert's constructor
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        extra_loaders=[DictLoader({"zcnb_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="zcnb_offline.html.j2")
    # Cells for the notebook reader only (the stage's introduction) are not part of the report.
    exporter.register_preprocessor(  # type: ignore[no-untyped-call]  # nbconvert is unannotated
        TagRemovePreprocessor(remove_cell_tags={NOTEBOOK_ONLY_TAG}), enabled=True)  # type: ignore[no-untyped-call]
    name = title or f"ZeptoClaw memory incident {nb_path.resolve().parent.name}"
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    return write_private(html_path, body)


_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


def _chmod_at(name: str, dir_fd: int, *, since: float | None) -> None:
    """chmod 0600 the regular file ``name`` in ``dir_fd``; symlinks and anything else are left alone."""
    try:
        fd = os.open(name, _NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError:  # ELOOP: a symlink (never followed); EACCES: no read permission -> check without opening
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode) and (since is None or st.st_ctime >= since):
            os.chmod(name, 0o600, dir_fd=dir_fd)
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and (since is None or st.st_ctime >= since):
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def lock_down(folder: Path, *, since: float | None = None) -> None:
    """Make what zcnb wrote private (papermill and matplotlib write with the umask); never leaves ``folder``.

    ``since=None`` (a folder zcnb created): the folder and its sub-folders 0700, files 0600. ``since=t`` (a
    folder that existed before): only regular files changed since ``t`` (ctime), at the top and in
    ``figures/``; no folder mode is changed. Symlinks are never followed nor changed (directory fds +
    ``O_NOFOLLOW``), so a link to a file outside cannot get its mode changed.
    """
    if since is None:
        for _root, _dirs, files, root_fd in os.fwalk(folder, follow_symlinks=False):
            os.fchmod(root_fd, 0o700)
            for f in files:
                _chmod_at(f, root_fd, since=None)
        return
    for sub in (folder, folder / "figures"):
        try:
            dir_fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # missing, or a symlink: not walked
        try:
            for name in os.listdir(dir_fd):
                _chmod_at(name, dir_fd, since=since)
        finally:
            os.close(dir_fd)


_INDEX_MARKER = "<!-- zcnb incidents index: written by zcnb, rewritten on every run -->"
_OLD_INDEX_TITLE = "<title>zcnb incidents</title>"  # indexes written before the marker existed


def index_is_ours(path: Path) -> bool:
    """True when ``path`` is an index.html zcnb wrote (marker comment); False when missing, foreign or a symlink."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return _INDEX_MARKER in head or _OLD_INDEX_TITLE in head


def write_index(incidents_dir: str | os.PathLike[str]) -> Path:
    """Write ``index.html`` listing every incident folder (date, verdict, growth, severity, time to limit, status).

    An ``index.html`` zcnb did not write (no marker comment) is never overwritten: :class:`OutputWriteError`.
    """
    base = Path(incidents_dir)
    target = base / "index.html"
    if os.path.lexists(target) and not index_is_ours(target):
        raise OutputWriteError(f"{target} exists and was not written by zcnb: not overwritten",
                               hint="move it away to get the incidents index, or use a dedicated incidents folder "
                                    "(--incidents-dir)", path=str(target))
    rows = []
    for folder in sorted((p for p in base.iterdir() if p.is_dir()), reverse=True):
        summary_path = folder / "summary.json"
        if not summary_path.is_file():
            continue
        try:
            s = read_json(summary_path)
        except (OSError, ValueError):
            continue
        rows.append(_index_row(folder, s))
    head = "".join(f"<th>{h}</th>" for h in ("incident", "sampling began", "verdict", "growth", "severity",
                                               "time to limit", "status"))
    page = (
        "<!doctype html>" + _INDEX_MARKER + "<html><head><meta charset='utf-8'><title>zcnb incidents</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
        "</style></head><body><h1>ZeptoClaw memory incidents</h1><table><tr>" + head + "</tr>" + "".join(rows)
        + "</table></body></html>\n"
    )
    return write_private(target, page)


def _index_row(folder: Path, s: dict[str, Any]) -> str:
    """One incident: when sampling began, verdict, growth, severity, time to the limit (with its source), status."""
    from ..units import format_duration, format_time

    a = s.get("assessment") or {}
    growth = a.get("growth_bytes_per_hour")
    growth_txt = format_bytes(growth, unit="MiB", digits=2) + "/h" if isinstance(growth, (int, float)) else "-"
    ttl = a.get("time_to_limit_s")
    limit = a.get("limit_bytes")
    ttl_txt = (format_duration(ttl) + (f" (limit {format_bytes(limit)}, {a.get('limit_source')})" if limit else "")
               if isinstance(ttl, (int, float)) else ("no limit known" if a.get("verdict") == "leak" and not limit
                                                      else "-"))
    began = (s.get("sampling") or {}).get("started") or s.get("started_at", "")
    status = "ok" if s.get("ok") else "failed: " + ", ".join(s.get("failed_stages") or [])
    link = f"{folder.name}/report.html" if (folder / "report.html").exists() else f"{folder.name}/"
    cells = [f"<a href='{html.escape(link)}'>{html.escape(folder.name)}</a>", html.escape(format_time(began)),
             html.escape(str(a.get("verdict", "?"))), html.escape(growth_txt), html.escape(str(a.get("severity") or "-")),
             html.escape(ttl_txt), html.escape(status)]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
