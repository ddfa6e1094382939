"""The report's post-mortem parts and figures, on hand-made incident folders (no kernels, no network).

Checks the wording of missing data (no data / skipped / failed / not run), capped shares, human units,
dry runs kept off the timeline, timeline labels that never overlap (boxes as matplotlib drew them),
sources on separate panels when their scales differ, and the incidents index.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from zcnb.actions import ActionResult, append_action
from zcnb.incident import bundled_sample_dir, open_incident
from zcnb.report import postmortem as pm
from zcnb.report.export import write_index
from zcnb.report.summary import build_incident_summary
from zcnb.stages.report import IncidentReport
from zcnb.units import format_duration, format_time
from zcnb.viz.memory import plot_memory, scale_groups
from zcnb.viz.timeline import Timeline, TimelineEntry, label_boxes, plot_timeline

T0 = datetime(2026, 12, 4, 17, 42, 59, tzinfo=UTC)


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (a["x1"] <= b["x0"] or b["x1"] <= a["x0"] or a["y1"] <= b["y0"] or b["y1"] <= a["y0"])


@pytest.mark.parametrize(("seconds", "text"), [(0.595853, "0.6 s"), (7e-06, "< 1 ms"), (0.064031, "64 ms"),
                                               (9.94, "9.9 s"), (45, "45 s"), (241766, "2.8 d")])
def test_durations_read_like_a_human_wrote_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_times_are_iso_to_the_second_in_utc() -> None:
    assert format_time("2026-12-04T17:44:48.957843+00:00") == "2026-12-04 17:44:48 UTC"
    assert format_time("2026-12-04T18:44:48.9+01:00") == "2026-12-04 17:44:48 UTC"
    assert format_time(None) == "-" and format_time("2h") == "-"


def test_shares_above_100_percent_are_capped_and_flagged() -> None:
    assert pm.share_text(1.05) == ("100 %", True)
    assert pm.share_text(0.926) == ("93 %", False)
    assert pm.share_text(None) == ("-", False)
    assert pm.activity_label("unauth")[1] == "token-less request"
    assert pm.activity_label("skill:git-workflow")[0] == "git-workflow skill invocations"


def _entries(n: int, spread_s: float) -> Timeline:
    kinds = ["onset", "detectable", "action", "restart", "recovery", "verdict", "oom-kill", "crash"]
    return Timeline(tuple(TimelineEntry(T0 + timedelta(seconds=i * spread_s), kinds[i % len(kinds)], f"event {i}", "-")
                          for i in range(n)))


def test_timeline_labels_never_overlap_even_when_events_coincide() -> None:
    """Eight events within 1.4 s (one pixel apart at this scale) on a 3-minute plot: labels go to other rows."""
    samples = pd.DataFrame({"timestamp": pd.date_range(T0 - timedelta(seconds=60), periods=180, freq="1s", tz="UTC"),
                            "rss_bytes": [20e6 + 1e5 * i for i in range(180)], "event": [""] * 180})
    fig = plot_timeline(_entries(8, 0.2), samples)
    boxes = label_boxes(fig)
    assert len(boxes) == 8
    assert all(not _overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    assert len({round(b["y0"]) for b in boxes}) > 1, "coinciding events need more than one label row"
    width = fig.get_figwidth() * fig.dpi
    assert all(0 <= b["x0"] and b["x1"] <= width for b in boxes), "a label sticks out of the figure"


def test_timeline_keeps_the_samples_width_when_an_event_is_much_later() -> None:
    samples = pd.DataFrame({"timestamp": pd.date_range(T0, periods=60, freq="1s", tz="UTC"),
                            "rss_bytes": [20e6] * 60, "event": [""] * 60})
    late = Timeline((TimelineEntry(T0 + timedelta(seconds=30), "restart", "r", "-"),
                     TimelineEntry(T0 + timedelta(minutes=35), "verdict", "v", "-")))
    fig = plot_timeline(late, samples)
    texts = [b["text"] for b in label_boxes(fig)]
    assert "2 verdict recorded (at 18:17:59)" in texts, texts
    lo, hi = fig.axes[0].get_xlim()
    assert (hi - lo) * 86400 < 120, "the x axis should stay near the samples' minute"


def test_sources_with_scales_over_5x_apart_get_separate_panels() -> None:
    ts = pd.date_range(T0, periods=100, freq="1s", tz="UTC")
    df = pd.DataFrame({"timestamp": ts, "rss_bytes": [20 * 2**20 + i * 1000 for i in range(100)],
                       "uss_bytes": [15 * 2**20] * 100, "cgroup_bytes": [600 * 2**20] * 100, "event": [""] * 100})
    assert scale_groups(df, ["rss_bytes", "uss_bytes", "cgroup_bytes"]) == [["cgroup_bytes"], ["rss_bytes", "uss_bytes"]]
    fig = plot_memory(df)
    assert len(fig.axes) == 2
    assert "separate scales" in fig.axes[0].get_title()
    near = plot_memory(df.drop(columns=["cgroup_bytes"]))
    assert len(near.axes) == 1


def _incident(tmp_path: Path) -> object:
    inc = open_incident(tmp_path / "inc")
    for name in ("samples.csv", "journal.jsonl", "commit.txt"):
        (inc.root / name).write_bytes((bundled_sample_dir() / name).read_bytes())
    return inc


def test_missing_parts_say_whether_the_stage_was_skipped_failed_not_run_or_found_nothing(tmp_path: Path) -> None:
    inc = _incident(tmp_path)
    # no run record, stage 03 never ran: "not run"
    rep = IncidentReport.load(inc.root)  # type: ignore[attr-defined]
    skills = rep.skills()
    assert skills.status == "not run" and "has not run on this incident folder yet" in skills.body
    # a run that left 03 out: "skipped"
    inc.write_json("summary", {"stages": [{"stage": "01", "notebook": "01_confirm_leak.ipynb", "status": "ok"}]})  # type: ignore[attr-defined]
    skipped = IncidentReport.load(inc.root).skills()  # type: ignore[attr-defined]
    assert skipped.status == "skipped" and "was skipped in this run" in skipped.body
    # a run where 03 failed: "failed", with the error and the cell
    inc.write_json("summary", {"stages": [{"stage": "03", "notebook": "03_diagnose.ipynb", "status": "failed",  # type: ignore[attr-defined]
                                           "error": "LogFormatError: journal unreadable", "failed_cell": 4}]})
    failed = IncidentReport.load(inc.root).skills()  # type: ignore[attr-defined]
    assert failed.status == "failed" and "journal unreadable" in failed.body and "cell 4" in failed.body
    # 03 ran and found no skill: "no data", said as such
    inc.write_json("summary", {"stages": [{"stage": "03", "notebook": "03_diagnose.ipynb", "status": "ok"}]})  # type: ignore[attr-defined]
    inc.write_json("log_summary", {"skills": [], "top_errors": []})  # type: ignore[attr-defined]
    none = IncidentReport.load(inc.root).skills()  # type: ignore[attr-defined]
    assert none.status == "no data" and "No skill invocations" in none.body
    texts = {s.body for s in (skills, skipped, failed, none)}
    assert len(texts) == 4 and not any("not available" in t for t in texts)


def test_dry_runs_are_listed_apart_and_never_on_the_timeline(tmp_path: Path) -> None:
    inc = _incident(tmp_path)
    path = inc.path("actions")  # type: ignore[attr-defined]
    path.unlink(missing_ok=True)
    done = ActionResult("restart", "zeptoclaw-gateway.service", False, "ok", started_at=T0,
                        finished_at=T0 + timedelta(seconds=0.595853), commands=("kill -TERM 1287", "start it"))
    plan = ActionResult("rollback", "/tmp/zcnb-state-x/zeptoclaw/state", True, "planned", started_at=T0,
                        finished_at=T0 + timedelta(microseconds=7), commands=("restore it",), plan_id="abcd1234")
    append_action(path, done)
    append_action(path, plan)
    summary = build_incident_summary(inc)  # type: ignore[arg-type]
    kinds = [(e["kind"], e["what"]) for e in summary["timeline"]]
    assert any(k == "action" and "restart" in w and "0.6 s" in w for k, w in kinds), kinds
    assert not any("rollback" in w for _, w in kinds), "a dry-run plan must not be on the timeline"
    assert [a["action"] for a in pm.executed_actions(summary)] == ["restart"]
    planned = pm.planned_actions(summary)
    assert [a["action"] for a in planned] == ["rollback"] and "sandbox copy" in planned[0]["target"]
    html = IncidentReport.load(inc.root).resolution().body  # type: ignore[attr-defined]
    assert html.index("kill -TERM 1287") < html.index("Planned, not executed")
    assert "7e-06" not in html and "0.595853" not in html and "0.6 s" in html


def test_summary_sentences_and_action_items_come_from_the_recorded_fields() -> None:
    s = {"assessment": {"verdict": "leak", "pattern": "linear", "growth_bytes_per_hour": 341.2 * 2**20,
                        "onset": T0.isoformat(), "limit_bytes": 2 * 2**30, "limit_source": "MemoryMax of the unit",
                        "time_to_limit_s": 5.6 * 3600, "severity": "high", "recommended_restart_interval_s": 4 * 3600},
         "sampling": {"started": T0.isoformat(), "ended": (T0 + timedelta(minutes=3)).isoformat(), "duration_s": 180,
                      "samples": 181, "first_bytes": 20 * 2**20, "peak_bytes": 31 * 2**20,
                      "peak_at": (T0 + timedelta(seconds=110)).isoformat(), "last_bytes": 27 * 2**20,
                      "column": "rss_bytes", "sources": ["psutil"]},
         "top_activity": {"activity": "unauth", "bytes_per_event": 66 * 1024, "low": 60 * 1024, "high": 70 * 1024,
                          "share": 1.05, "events": 231},
         "correlation": {"evidence": "strong"}, "oom": {"kills": 0, "events": []}, "crashes": [],
         "escalation": {"action": "restart_and_recheck", "headline": "Fast leak (hours): restart now.",
                        "runbook_rule": ""}, "escalation_source": "stage 06",
         "timeline": [{"kind": "detectable", "time": (T0 + timedelta(seconds=62)).isoformat()}], "actions": []}
    text = " ".join(pm.summary_sentences(s))
    assert 3 <= len(pm.summary_sentences(s)) <= 5
    assert "+341.2 MiB/h" in text and "66.0 KiB" in text and "100 %" in text and "105" not in text
    assert "2.0 GiB (MemoryMax of the unit)" in text and "5.6 h" in text and "severity high" in text
    items = pm.action_items(s)
    assert items[0]["priority"] == "P1" and "Restart now" in items[0]["item"]
    assert any("every 4.0 h" in i["item"] for i in items)
    assert any("token-less" in i["item"] and i["type"] == "prevent" for i in items)
    assert any(i["type"] == "detect" and "62 s" in i["item"] for i in items)
    rows = dict(pm.impact_rows(s))
    assert rows["leak detectable"] == "2026-12-04 17:44:01 UTC (62 s after sampling began)"
    assert not any(isinstance(v, float) and math.isnan(v) for v in rows.values())


def test_index_shows_severity_and_time_to_limit(tmp_path: Path) -> None:
    folder = tmp_path / "2026-12-04T174258Z-demo"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({
        "ok": True, "sampling": {"started": T0.isoformat()},
        "assessment": {"verdict": "leak", "growth_bytes_per_hour": 2**21, "severity": "high",
                       "time_to_limit_s": 5.6 * 3600, "limit_bytes": 2**31, "limit_source": "MemoryMax"}}))
    html = write_index(tmp_path).read_text()
    assert "severity" in html and "time to limit" in html
    row = html.split(folder.name, 1)[1]
    assert "high" in row and "5.6 h (limit 2.0 GiB, MemoryMax)" in row and "2026-12-04 17:42:59 UTC" in row
