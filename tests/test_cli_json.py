"""``--json [OUT]``: one meaning on every command (bare: JSON on stdout instead of text; OUT: text + file)."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from zcnb.cli import build_parser, main
from zcnb.commands import leaks as leaks_cmd

DATA = Path(__file__).parent / "data"
SERIES = DATA / "series"


def _strict(text: str) -> Any:
    """Parse JSON refusing NaN/Infinity (what jq and other tools refuse too)."""
    def bad(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=bad)


def _json_actions(parser: argparse.ArgumentParser, prog: str) -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if "--json" in action.option_strings:
            found.append((prog, action))
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _json_actions(sub, f"{prog} {name}")
    return found


def test_every_json_option_means_the_same() -> None:
    """Every command's --json (the leaks sub-parsers included) is the shared optional-OUT form."""
    found = _json_actions(build_parser(), "zcnb")
    for sub in (leaks_cmd._file_parser(), leaks_cmd._run_parser(), leaks_cmd._capture_parser()):
        found += _json_actions(sub, sub.prog)
    progs = {p for p, _ in found}
    for expected in ("zcnb analyze", "zcnb logs", "zcnb preflight", "zcnb fleet", "zcnb status", "zcnb health",
                     "zcnb escalate", "zcnb restart", "zcnb rollback", "zcnb backup list", "zcnb restore",
                     "zcnb leaks", "zcnb leaks run", "zcnb leaks capture"):
        assert expected in progs, f"{expected} has no --json"
    for prog, action in found:
        # `restore resume|undo` keep a --json given before them: their own copy has no default (SUPPRESS)
        default = None if prog in ("zcnb restore resume", "zcnb restore undo") else action.default
        assert (action.nargs, action.const, default, action.metavar) == ("?", "-", None, "OUT"), prog
        if default is not action.default:
            assert action.default == argparse.SUPPRESS, prog
        assert "instead of the text" in (action.help or ""), prog


def test_analyze_bare_json_is_the_only_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "linear.csv"
    csv.write_bytes((SERIES / "linear.csv").read_bytes())
    assert main(["analyze", str(csv), "--limit", "1GiB", "--json"]) == 1  # exit code of the verdict kept
    cap = capsys.readouterr()
    data = _strict(cap.out)  # the whole of stdout is one JSON document
    assert data["verdict"] == "leak" and data["limit_source"] == "--limit"
    assert "figure" in cap.err and str(csv) + ".png" in cap.err  # the note about the PNG went to stderr
    # --json OUT: the text as before, the same document in a 0600 file
    out = tmp_path / "a.json"
    assert main(["analyze", str(csv), "--limit", "1GiB", "--no-png", "--json", str(out)]) == 1
    cap = capsys.readouterr()
    assert "verdict" in cap.out and "time to limit" in cap.out and f"wrote {out}" in cap.out
    assert (out.stat().st_mode & 0o777) == 0o600
    from_file = _strict(out.read_text())
    assert from_file["verdict"] == data["verdict"]
    assert from_file["growth_bytes_per_hour"] == pytest.approx(data["growth_bytes_per_hour"])
    # "--json -" is the same as the bare flag
    assert main(["analyze", str(csv), "--no-png", "--json", "-"]) == 1
    assert _strict(capsys.readouterr().out)["verdict"] == "leak"


def test_json_out_never_replaces_a_file_that_is_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped --json pointing at the input CSV must not overwrite it; a folder is refused too."""
    csv = tmp_path / "linear.csv"
    csv.write_bytes((SERIES / "linear.csv").read_bytes())
    before = hashlib.sha256(csv.read_bytes()).hexdigest()
    assert main(["analyze", str(csv), "--no-png", "--json", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "exists and is not JSON" in err and "give a new file name" in err
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == before
    assert main(["analyze", str(csv), "--no-png", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    # the check runs before the work: a leaks run with a bad OUT never starts the command
    marker = tmp_path / "ran"
    assert main(["leaks", "run", "--seconds", "1", "--json", str(csv), "--", "touch", str(marker)]) == 2
    assert not marker.exists() and "not JSON" in capsys.readouterr().err
    # an earlier JSON result may be replaced (re-running a command)
    out = tmp_path / "r.json"
    out.write_text('{"old": true}\n')
    assert main(["analyze", str(csv), "--no-png", "--json", str(out)]) == 1
    assert "old" not in _strict(out.read_text())


def test_escalate_and_backup_list_with_out_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Commands that printed JSON with a bare flag now also take a file, and keep their text then."""
    from zcnb.analysis import assess_leak
    from zcnb.collect.samples_csv import read_samples

    a = assess_leak(read_samples(SERIES / "linear.csv"), limit_bytes=1024**3)
    (tmp_path / "assessment.json").write_text(json.dumps(a.to_dict(), allow_nan=False))
    out = tmp_path / "esc.json"
    assert main(["escalate", "--assessment", str(tmp_path / "assessment.json"), "--json", str(out)]) == 0
    cap = capsys.readouterr()
    assert not cap.out.lstrip().startswith("{") and f"wrote {out}" in cap.out
    decision = _strict(out.read_text())
    assert decision["headline"] and decision["headline"] in cap.out  # the file holds what the text said
    assert (out.stat().st_mode & 0o777) == 0o600
    (tmp_path / "backups").mkdir()
    assert main(["backup", "list", "--backups-dir", str(tmp_path / "backups"), "--json"]) == 0
    listed = _strict(capsys.readouterr().out)
    assert isinstance(listed, (dict, list))
    assert main(["backup", "list", "--backups-dir", str(tmp_path / "backups")]) == 0
    assert "no backups found" in capsys.readouterr().out


def test_leaks_and_logs_bare_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaks", str(DATA / "leakreports" / "valgrind_leaky.txt"), "--json"]) == 0
    rep = _strict(capsys.readouterr().out)
    assert rep["recognized"] is True
    assert main(["leaks", str(DATA / "leakreports" / "massif_grows.out"), "--json"]) == 0
    assert _strict(capsys.readouterr().out)
    log = DATA / "logs" / "raw_restarts.log"
    assert main(["logs", "--text", str(log), "--since", "2026-01-01", "--json"]) == 0
    cap = capsys.readouterr()
    summary = _strict(cap.out)
    assert summary["n_lines"] > 0 and "apply to journal input only" in cap.err


def test_nan_becomes_null_on_stdout_too(capsys: pytest.CaptureFixture[str]) -> None:
    """Results holding NaN still print strict JSON (a bare --json used to print NaN for some commands)."""
    from zcnb.commands.json_option import emit_json

    class Result:
        def to_dict(self) -> dict[str, Any]:
            return {"growth": math.nan, "inner": {"x": [1.0, math.inf]}}

    emit_json(argparse.Namespace(json="-"), Result())
    assert _strict(capsys.readouterr().out) == {"growth": None, "inner": {"x": [1.0, None]}}
