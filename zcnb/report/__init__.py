"""The headless run and its report: ``runner`` (papermill over the stage notebooks into a dated
incident folder, ``summary.json``, the offline HTML export, the incidents index), ``timeline``
(the evidence timeline), ``pdf`` (headless Chromium). The names below are this package's front door.
"""

from __future__ import annotations

from .runner import STAGES, IncidentRun, StageResult, export_html, notebooks_dir, run_incident, write_index

__all__ = ["STAGES", "IncidentRun", "StageResult", "export_html", "notebooks_dir", "run_incident", "write_index"]
