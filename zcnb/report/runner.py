"""Run the stage notebooks with papermill into a dated incident folder and build the report.

``run_incident()`` executes the chosen stages (01, 02, 03, 04, 06) in order, each into
``<incident>/NN_name.ipynb`` with ``incident_dir`` as its parameter, so stages hand results
to each other only through files in that folder. A failed stage still leaves its
executed notebook (papermill marks the failing cell); later stages still run, and the
report says which stage failed and why. Then ``summary.json`` is written, the report
notebook ``05_incident_report.ipynb`` is executed, exported to ``report.html`` (inputs
hidden, images embedded) and the incidents ``index.html`` is refreshed.
"""

from __future__ import annotations

import html
import os
import re
import stat
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError, OutputWriteError, ReportError
from ..files import make_private_dir, read_json, write_json, write_private
from ..incident import Incident, new_incident_dir, open_incident
from ..units import format_bytes

__all__ = [
    "STAGES",
    "IncidentRun",
    "StageResult",
    "export_html",
    "notebooks_dir",
    "run_incident",
    "write_index",
]

STAGES: dict[str, str] = {
    "01": "01_confirm_leak.ipynb",
    "02": "02_mitigate.ipynb",
    "03": "03_diagnose.ipynb",
    "04": "04_restore_state.ipynb",
    "06": "06_escalate_rollback.ipynb",
}
REPORT_NOTEBOOK = "05_incident_report.ipynb"
DEFAULT_STAGES = ("01", "02", "03", "04", "06")
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|api_?key|auth)", re.IGNORECASE)


@dataclass(frozen=True)
class StageResult:
    """What happened to one stage notebook (nbmake's NotebookResult, zcnb-shaped)."""

    stage: str
    notebook: str
    output: Path
    status: str  # "ok" | "failed"
    duration_s: float
    error: str | None = None
    failed_cell: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "notebook": self.notebook,
            "output": self.output.name,
            "status": self.status,
            "duration_s": round(self.duration_s, 2),
            "error": self.error,
            "failed_cell": self.failed_cell,
        }


@dataclass(frozen=True)
class IncidentRun:
    """The result of :func:`run_incident`."""

    folder: Path
    stages: tuple[StageResult, ...]
    report: StageResult | None
    report_html: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    report_pdf: Path | None = None
    pdf_error: str | None = None  # set when a PDF was asked for and could not be printed

    @property
    def ok(self) -> bool:
        return (all(s.status == "ok" for s in self.stages) and self.report is not None
                and self.report.status == "ok" and self.pdf_error is None)

    @property
    def failed(self) -> tuple[StageResult, ...]:
        extra = (self.report,) if self.report is not None and self.report.status != "ok" else ()
        return tuple(s for s in self.stages if s.status != "ok") + extra

    def _repr_markdown_(self) -> str:
        lines = [f"**Incident** `{self.folder}`", "", "| stage | status | duration | error |", "|---|---|---|---|"]
        for s in (*self.stages, *( [self.report] if self.report else [])):
            lines.append(f"| {s.notebook} | {s.status} | {s.duration_s:.1f} s | {s.error or ''} |")
        if self.report_html:
            lines += ["", f"Report: `{self.report_html}`"]
        if self.report_pdf:
            lines += ["", f"PDF: `{self.report_pdf}`"]
        if self.pdf_error:
            lines += ["", f"PDF not printed: {self.pdf_error}"]
        return "\n".join(lines)


def notebooks_dir() -> Path:
    """Folder holding the stage notebooks (``$ZCNB_NOTEBOOKS`` or the checkout's ``notebooks/``)."""
    env = os.environ.get("ZCNB_NOTEBOOKS")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "notebooks")
    for c in candidates:
        if (c / REPORT_NOTEBOOK).is_file():
            return c
    raise ConfigError(
        "the stage notebooks were not found",
        hint="set ZCNB_NOTEBOOKS to the folder holding 01_confirm_leak.ipynb ... (the repo's notebooks/)",
        searched=[str(c) for c in candidates],
    )


def _current_token(params: Mapping[str, Any]) -> str | None:
    """The token the stages would use (the parameters' token_env, else the settings'), to refuse it as a value."""
    from ..config import gateway_token

    try:
        tok = gateway_token(str(params.get("token_env") or "") or None)
    except ConfigError:
        return None
    return tok.reveal() if tok else None


def _check_parameters(params: Mapping[str, Any]) -> None:
    """Refuse parameters that would put a secret into a notebook (only env-var *names* are allowed)."""
    for key, value in params.items():
        if _SECRET_KEY.search(key) and not key.endswith("_env"):
            raise ConfigError(
                f"parameter {key!r} looks like a secret; notebooks must never receive tokens",
                hint="pass the NAME of the environment variable instead (e.g. token_env='GATEWAY_AUTH_TOKEN')",
                parameter=key,
            )
        if isinstance(value, str):
            env_secret = _current_token(params)
            if env_secret and env_secret in value:
                raise ConfigError(f"parameter {key!r} contains the gateway token", hint="never pass token values as parameters")


def _stage_error(exc: BaseException) -> tuple[str, int | None]:
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    cell = getattr(exc, "exec_count", None)
    if ename:
        return f"{ename}: {evalue}", cell
    return f"{type(exc).__name__}: {exc}", cell


def _execute(notebook: Path, output: Path, params: dict[str, Any], *, progress: bool, cwd: Path,
             kernel_name: str | None, timeout_s: float) -> StageResult:
    import papermill  # slow import: keep it out of module import time

    stage = notebook.name[:2]
    t0 = time.monotonic()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=params,
            progress_bar=progress,
            cwd=str(cwd),
            kernel_name=kernel_name or "python3",
            execution_timeout=timeout_s,
            log_output=False,
        )
    except Exception as exc:  # noqa: BLE001  papermill raises PapermillExecutionError and others: all mean "stage failed"
        err, cell = _stage_error(exc)
        return StageResult(stage, notebook.name, output, "failed", time.monotonic() - t0, err, cell)
    finally:
        if output.exists():
            os.chmod(output, 0o600)
    return StageResult(stage, notebook.name, output, "ok", time.monotonic() - t0)


def run_incident(
    *,
    incident_dir: str | os.PathLike[str] | None = None,
    incidents_dir: str | os.PathLike[str] | None = None,
    slug: str = "memory-leak",
    stages: Sequence[str] = DEFAULT_STAGES,
    parameters: Mapping[str, Any] | None = None,
    stage_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    commit: str | None = None,
    progress: bool = True,
    kernel_name: str | None = None,
    timeout_s: float = 600.0,
    pdf: bool = False,
    chromium: str | os.PathLike[str] | None = None,
) -> IncidentRun:
    """Execute stage notebooks into an incident folder, then the report; see the module docstring.

    ``incident_dir`` reuses a folder that already holds collected data (samples.csv,
    journal.jsonl, actions.jsonl ...); otherwise a new dated folder is created in
    ``incidents_dir`` (default: the settings' incidents folder). ``pdf=True`` also prints
    ``report.pdf`` with a headless Chromium (:func:`zcnb.report.pdf.export_pdf`); when that
    fails the HTML report stands, ``pdf_error`` says why and the run is not ``ok``.
    """
    from ..config import load_settings

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        extra = " (05 is the report itself: it always runs last)" if "05" in unknown else ""
        raise ConfigError(f"unknown stage(s) {unknown}{extra}", hint=f"choose from {sorted(STAGES)}")
    params = dict(parameters or {})
    _check_parameters(params)
    for sp in (stage_parameters or {}).values():
        _check_parameters(sp)
    nb_dir = notebooks_dir()
    run_started = time.time()
    if incident_dir:
        # A folder zcnb creates is 0700; an existing one keeps its mode (it may be shared on purpose) and
        # only the files this run writes are locked down; a group/world-accessible one gets a warning.
        folder = Path(incident_dir).expanduser()
        created = make_private_dir(folder)
        _warn_if_open(folder, created)
    else:
        base = Path(incidents_dir) if incidents_dir else load_settings().incidents_path
        folder = new_incident_dir(base, slug)
        created = True
    incident = open_incident(folder)
    if commit:
        write_private(incident.path("commit"), commit.strip() + "\n")
    started = datetime.now(UTC)
    results: list[StageResult] = []
    for stage in stages:
        nb = nb_dir / STAGES[stage]
        p = {"incident_dir": str(folder), **params, **dict((stage_parameters or {}).get(stage, {}))}
        results.append(_execute(nb, folder / nb.name, p, progress=progress, cwd=folder,
                                kernel_name=kernel_name, timeout_s=timeout_s))
        write_json(folder / "stages.json", [r.to_dict() for r in results])
    from .summary import build_incident_summary

    summary = build_incident_summary(incident, stages=[r.to_dict() for r in results], started_at=started,
                            parameters={k: v for k, v in params.items()})
    incident.write_json("summary", summary)
    rep_nb = nb_dir / REPORT_NOTEBOOK
    report = _execute(rep_nb, folder / rep_nb.name, {"incident_dir": str(folder)}, progress=progress,
                      cwd=folder, kernel_name=kernel_name, timeout_s=timeout_s)
    summary["report"] = report.to_dict()
    summary["finished_at"] = datetime.now(UTC).isoformat()
    incident.write_json("summary", summary)
    html_path: Path | None = None
    pdf_path: Path | None = None
    pdf_error: str | None = None
    if report.output.exists():
        html_path = export_html(report.output, incident.path("report"))
        if pdf:
            from .pdf import export_pdf

            try:
                pdf_path = export_pdf(html_path, chromium=chromium)
            except ReportError as exc:
                pdf_error = str(exc)
    elif pdf:
        pdf_error = "the report notebook produced no output to print"
    _lock_down(folder, since=None if created else run_started - 2.0)
    # The index is refreshed in the incidents folder the run was created in, or in a parent that already
    # holds a zcnb index; an index.html zcnb did not write is never overwritten.
    if not incident_dir or _index_is_ours(folder.parent / "index.html"):
        try:
            write_index(folder.parent)
        except OutputWriteError as exc:
            warnings.warn(f"{exc.message} ({exc.hint})", stacklevel=2)
    return IncidentRun(folder, tuple(results), report, html_path, summary, pdf_path, pdf_error)


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

    The page loads nothing from the network (no CDN scripts; a Content-Security-Policy
    forbids any load), so it opens the same on an offline host. ``title`` defaults to
    "ZeptoClaw memory incident <folder name>".
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb_path = Path(notebook)
    nb = nbformat.read(str(nb_path), as_version=4)  # type: ignore[no-untyped-call]  # nbformat has no annotations
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]  # nor has nbconvert's constructor
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        extra_loaders=[DictLoader({"zcnb_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="zcnb_offline.html.j2")
    name = title or f"ZeptoClaw memory incident {nb_path.resolve().parent.name}"
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    return write_private(html_path, body)


def _warn_if_open(folder: Path, created: bool) -> None:
    if created:
        return
    try:
        mode = stat.S_IMODE(os.stat(folder).st_mode)
    except OSError:
        return
    if mode & 0o077:
        warnings.warn(f"incident folder {folder} is mode {mode:o} (others can list it): zcnb leaves an existing "
                      "folder's mode alone and makes only the files it writes 0600; run `chmod 700` on it if it "
                      "should be private", stacklevel=3)


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


def _lock_down(folder: Path, *, since: float | None = None) -> None:
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


def _index_is_ours(path: Path) -> bool:
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
    """Write ``index.html`` listing every incident folder (date, verdict, growth rate, status).

    An ``index.html`` zcnb did not write (no marker comment) is never overwritten: :class:`OutputWriteError`.
    """
    base = Path(incidents_dir)
    target = base / "index.html"
    if os.path.lexists(target) and not _index_is_ours(target):
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
        verdict = (s.get("assessment") or {}).get("verdict", "?")
        growth = (s.get("assessment") or {}).get("growth_bytes_per_hour")
        growth_txt = format_bytes(growth, unit="MiB", digits=2) + "/h" if isinstance(growth, (int, float)) else "-"
        status = "ok" if s.get("ok") else "failed: " + ", ".join(s.get("failed_stages") or [])
        link = f"{folder.name}/report.html" if (folder / "report.html").exists() else f"{folder.name}/"
        rows.append(
            f"<tr><td><a href='{html.escape(link)}'>{html.escape(folder.name)}</a></td>"
            f"<td>{html.escape(str(s.get('started_at', '')))}</td><td>{html.escape(str(verdict))}</td>"
            f"<td>{html.escape(growth_txt)}</td><td>{html.escape(status)}</td></tr>"
        )
    page = (
        "<!doctype html>" + _INDEX_MARKER + "<html><head><meta charset='utf-8'><title>zcnb incidents</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 10px;border-bottom:1px solid #ddd}</style></head>"
        "<body><h1>ZeptoClaw memory incidents</h1><table><tr><th>incident</th><th>started</th><th>verdict</th>"
        "<th>growth</th><th>status</th></tr>" + "".join(rows) + "</table></body></html>\n"
    )
    return write_private(target, page)


def load_run(folder: str | os.PathLike[str]) -> Incident:
    """Open an existing incident folder (raises if it has no summary yet)."""
    inc = open_incident(folder, create=False)
    if not inc.has("summary"):
        raise ReportError(f"{inc.root} has no summary.json", hint="run `zcnb report` on it first", path=str(inc.root))
    return inc
