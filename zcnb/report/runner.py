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

import os
import re
import stat
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError, OutputWriteError, ReportError
from ..files import make_private_dir, write_json, write_private
from ..incident import Incident, new_incident_dir, open_incident
from ..redact import credential_kinds
from .export import export_html, index_is_ours, lock_down, write_index
from .kernel import KernelPool
from .summary import build_incident_summary

__all__ = [
    "STAGES",
    "IncidentRun",
    "StageResult",
    "load_run",
    "notebooks_dir",
    "run_incident",
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


def _check_parameters(params: Mapping[str, Any], where: str = "") -> None:
    """Refuse parameters that would put a secret into a notebook (only env-var *names* are allowed).

    Papermill stores every parameter in the executed notebook (its injected cell and metadata), so a key
    that names a secret, or a value holding credentials of any kind (URL ``user:password@``, ``sk-``/
    ``nvapi-`` keys, ``Bearer``, JWTs, ``token=...``, the gateway token itself), is refused before anything runs.
    """
    env_secret = _current_token(params)
    for key, value in params.items():
        name = f"{where}{key}"
        if _SECRET_KEY.search(key) and not key.endswith("_env"):
            raise ConfigError(
                f"parameter {name!r} looks like a secret; notebooks must never receive tokens",
                hint="pass the NAME of the environment variable instead (e.g. token_env='GATEWAY_AUTH_TOKEN')",
                parameter=name,
            )
        for text in _strings(value):
            kinds = credential_kinds(text)
            if env_secret and env_secret in text:
                kinds.insert(0, "the gateway token")
            if kinds:
                raise ConfigError(
                    f"parameter {name!r} holds {', '.join(kinds)}: papermill would store it in the executed "
                    "notebook and the report, so it is refused (the value is not shown)",
                    hint="put credentials in environment variables and pass their names (token_env=..., for "
                         "Prometheus basic_user_env/basic_password_env/bearer_token_env); give URLs without user:password@",
                    parameter=name)


def _strings(value: Any) -> list[str]:
    """Every string inside a parameter value (lists and dicts included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [s for v in value for s in _strings(v)]
    return []


def _stage_error(exc: BaseException) -> tuple[str, int | None]:
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    cell = getattr(exc, "exec_count", None)
    if ename:
        return f"{ename}: {evalue}", cell
    return f"{type(exc).__name__}: {exc}", cell


def _execute(notebook: Path, output: Path, params: dict[str, Any], *, progress: bool, cwd: Path,
             kernel_name: str | None, timeout_s: float, kernels: KernelPool | None = None) -> StageResult:
    """Run one notebook with papermill: in a kernel from ``kernels`` when one is ready, else in a new one."""
    import papermill  # slow import: keep it out of module import time

    from .kernel import ipc_kernel_manager_class

    stage = notebook.name[:2]
    t0 = time.monotonic()
    km = kernels.take() if kernels is not None else None
    # The kernel starts in ``cwd`` (nbclient reads it from ``resources``); papermill's own ``cwd=`` would chdir the
    # whole process, which races when stages run in parallel threads and can leave the caller in a removed folder.
    common = {"parameters": params, "progress_bar": progress, "resources": {"metadata": {"path": str(cwd)}},
              "kernel_name": kernel_name or "python3", "execution_timeout": timeout_s, "log_output": False}
    try:
        if km is not None:
            papermill.execute_notebook(str(notebook), str(output), km=km, **common)
        else:
            with ipc_kernel_manager_class() as manager_class:
                papermill.execute_notebook(str(notebook), str(output), kernel_manager_class=manager_class, **common)
    except Exception as exc:  # noqa: BLE001  papermill raises PapermillExecutionError and others: all mean "stage failed"
        err, cell = _stage_error(exc)
        return StageResult(stage, notebook.name, output, "failed", time.monotonic() - t0, err, cell)
    finally:
        if km is not None:
            KernelPool.release(km)
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
    index: bool | None = None,
    on_stage: Callable[[StageResult, int, int], None] | None = None,
    workers: int = 1,
    kernels: KernelPool | None = None,
) -> IncidentRun:
    """Execute stage notebooks into an incident folder, then the report; see the module docstring.

    ``incident_dir`` reuses a folder that already holds collected data (samples.csv,
    journal.jsonl, actions.jsonl ...); otherwise a new dated folder is created in
    ``incidents_dir`` (default: the settings' incidents folder). ``pdf=True`` also prints
    ``report.pdf`` with a headless Chromium (:func:`zcnb.report.pdf.export_pdf`); when that
    fails the HTML report stands, ``pdf_error`` says why and the run is not ``ok``.

    ``index`` refreshes the incidents ``index.html`` in the folder's parent (default: when the run made a new
    dated folder, or the parent already holds a zcnb index). ``on_stage(result, k, n)`` is called as each of
    the ``n`` notebooks (the stages, then the report) finishes. ``workers=2`` runs stages whose inputs are
    ready side by side (:data:`NEEDS`: 02 and 03 after 01, 06 after 01 and 02; 04 any time). ``kernels``: a
    :class:`~zcnb.report.kernel.KernelPool` started earlier (one fresh kernel per notebook either way).
    """
    _check_stages(stages)
    params = dict(parameters or {})
    _check_parameters(params)
    for stage, p in (stage_parameters or {}).items():
        _check_parameters(p, where=f"{stage}.")
    nb_dir = notebooks_dir()
    run_started = time.time()
    folder, created = _incident_folder(incident_dir, incidents_dir, slug)
    incident = open_incident(folder)
    if commit:
        write_private(incident.path("commit"), commit.strip() + "\n")
    earlier = _earlier_record(incident, stages)
    started = datetime.fromisoformat(earlier["started_at"]) if earlier.get("started_at") else datetime.now(UTC)
    results = _run_stages(nb_dir, folder, stages, params, stage_parameters or {}, progress=progress,
                          kernel_name=kernel_name, timeout_s=timeout_s, on_stage=on_stage, workers=workers,
                          kernels=kernels)
    record = {"incident": folder.name, "started_at": started.isoformat(),
              "stages": [*earlier.get("stages", []), *(r.to_dict() for r in results)],
              "parameters": earlier.get("parameters") or dict(params)}
    incident.write_json("summary", record)  # the run's record: the report notebook completes the summary
    report = _execute(nb_dir / REPORT_NOTEBOOK, folder / REPORT_NOTEBOOK, {"incident_dir": str(folder)},
                      progress=progress, cwd=folder, kernel_name=kernel_name, timeout_s=timeout_s, kernels=kernels)
    if on_stage is not None:
        on_stage(report, len(stages) + 1, len(stages) + 1)
    summary = _completed_summary(incident, record, started)
    summary["report"] = report.to_dict()
    summary["finished_at"] = datetime.now(UTC).isoformat()
    incident.write_json("summary", summary)
    html_path, pdf_path, pdf_error = _export(report, incident, pdf=pdf, chromium=chromium)
    lock_down(folder, since=None if created else run_started - 2.0)
    _refresh_index(folder, own_folder=index if index is not None else not incident_dir)
    return IncidentRun(folder, tuple(results), report, html_path, summary, pdf_path, pdf_error)


def _check_stages(stages: Sequence[str]) -> None:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        extra = " (05 is the report itself: it always runs last)" if "05" in unknown else ""
        raise ConfigError(f"unknown stage(s) {unknown}{extra}", hint=f"choose from {sorted(STAGES)}")


def _incident_folder(incident_dir: str | os.PathLike[str] | None, incidents_dir: str | os.PathLike[str] | None,
                     slug: str) -> tuple[Path, bool]:
    """The run's folder and whether this run created it."""
    from ..config import load_settings

    if incident_dir:
        # A folder zcnb creates is 0700; an existing one keeps its mode (it may be shared on purpose) and
        # only the files this run writes are locked down; a group/world-accessible one gets a warning.
        folder = Path(os.path.abspath(Path(incident_dir).expanduser()))  # the stages run with another cwd
        if folder.is_symlink():
            open_incident(folder)  # raises: a symlinked incident folder is refused, not followed
        created = make_private_dir(folder)
        _warn_if_open(folder, created)
        return folder, created
    base = Path(incidents_dir) if incidents_dir else load_settings().incidents_path
    return new_incident_dir(base, slug), True


def _earlier_record(incident: Incident, stages: Sequence[str]) -> dict[str, Any]:
    """A report-only run (no stages) on a folder that has a summary keeps what the stages did, when, and with
    which parameters: the earlier summary. Any run with stages starts a fresh record."""
    if stages:
        return {}
    earlier = incident.read_json_or_none("summary")
    return earlier if isinstance(earlier, dict) else {}


# What each stage reads from another (preflight.json, assessment.json, after_restart.json): it starts after those.
NEEDS: dict[str, tuple[str, ...]] = {"02": ("01",), "03": ("01",), "06": ("01", "02")}


def _run_stages(nb_dir: Path, folder: Path, stages: Sequence[str], params: dict[str, Any],
                stage_parameters: Mapping[str, Mapping[str, Any]], *, progress: bool, kernel_name: str | None,
                timeout_s: float, on_stage: Callable[[StageResult, int, int], None] | None = None,
                workers: int = 1, kernels: KernelPool | None = None) -> list[StageResult]:
    """Every stage into the folder, in order (``workers=1``) or side by side when their inputs are ready;
    ``stages.json`` is rewritten after each (a crash keeps the list). Results come back in stage order."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    done: dict[str, StageResult] = {}
    pending = list(stages)
    running: dict[Future[StageResult], str] = {}

    def start(pool: ThreadPoolExecutor, stage: str) -> None:
        nb = nb_dir / STAGES[stage]
        p = {"incident_dir": str(folder), **params, **dict(stage_parameters.get(stage, {}))}
        running[pool.submit(_execute, nb, folder / nb.name, p, progress=progress and workers == 1, cwd=folder,
                            kernel_name=kernel_name, timeout_s=timeout_s, kernels=kernels)] = stage

    slots = max(1, workers)
    with ThreadPoolExecutor(max_workers=slots, thread_name_prefix="zcnb-stage") as pool:
        while pending or running:
            ready = [s for s in pending if all(n in done or n not in stages for n in NEEDS.get(s, ()))]
            for stage in ready[:max(0, slots - len(running))]:
                pending.remove(stage)
                start(pool, stage)
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                stage = running.pop(fut)
                done[stage] = fut.result()
                write_json(folder / "stages.json", [done[s].to_dict() for s in stages if s in done])
                if on_stage is not None:
                    on_stage(done[stage], len(done), len(stages) + 1)
    return [done[s] for s in stages]


def _completed_summary(incident: Incident, record: dict[str, Any], started: datetime) -> dict[str, Any]:
    """The summary the report notebook wrote for this run, or (it failed before) one built here."""
    written = incident.read_json_or_none("summary")
    if isinstance(written, dict) and "assessment" in written and written.get("stages") == record["stages"]:
        return written
    return build_incident_summary(incident, stages=record["stages"], started_at=started,
                                  parameters=record["parameters"])


def _export(report: StageResult, incident: Incident, *, pdf: bool,
            chromium: str | os.PathLike[str] | None) -> tuple[Path | None, Path | None, str | None]:
    """``report.html`` from the executed report notebook, and ``report.pdf`` when asked: (html, pdf, pdf error)."""
    if not report.output.exists():
        return None, None, "the report notebook produced no output to print" if pdf else None
    html_path = export_html(report.output, incident.path("report"))
    if not pdf:
        return html_path, None, None
    from .pdf import export_pdf

    try:
        return html_path, export_pdf(html_path, chromium=chromium), None
    except ReportError as exc:
        return html_path, None, str(exc)


def _refresh_index(folder: Path, *, own_folder: bool) -> None:
    """The index is refreshed in the incidents folder the run was created in, or in a parent that already
    holds a zcnb index; an index.html zcnb did not write is never overwritten."""
    if not own_folder and not index_is_ours(folder.parent / "index.html"):
        return
    try:
        write_index(folder.parent)
    except OutputWriteError as exc:
        warnings.warn(f"{exc.message} ({exc.hint})", stacklevel=3)


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
                      "should be private", stacklevel=4)


def load_run(folder: str | os.PathLike[str]) -> Incident:
    """Open an existing incident folder (raises if it has no summary yet)."""
    inc = open_incident(folder, create=False)
    if not inc.has("summary"):
        raise ReportError(f"{inc.root} has no summary.json", hint="run `zcnb report` on it first", path=str(inc.root))
    return inc
