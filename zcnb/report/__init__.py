"""The headless run and its report: ``runner`` (papermill over the stage notebooks into a dated
incident folder), ``summary`` (``summary.json``), ``export`` (the offline HTML export, the folder's
modes, the incidents index), ``timeline`` (the evidence timeline), ``pdf`` (headless Chromium).
The names below are this package's front door.
"""

from __future__ import annotations

from .export import export_html, write_index
from .runner import STAGES, IncidentRun, StageResult, notebooks_dir, run_incident

__all__ = ["STAGES", "IncidentRun", "StageResult", "export_html", "notebooks_dir", "run_incident", "write_index"]
