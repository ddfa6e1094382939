"""The second bundled sample, zcnb/data/sample_incident_real: one incident recorded on the real ZeptoClaw binary
(``python -m bench.record_incident --gateway-binary PATH``). Its data must replay to the same verdict, name the real
binary, and hold no token in any form."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from zcnb.analysis import assess_leak
from zcnb.collect.samples_csv import read_samples
from zcnb.leaks.parse import parse_leak_file

SAMPLE = Path(str(resources.files("zcnb") / "data" / "sample_incident_real"))


def test_real_sample_replays_to_a_leak_and_a_clean_restart() -> None:
    truth = json.loads((SAMPLE / "ground_truth.json").read_text())
    assert truth["gateway"] == "real" and truth["probe_headers"] == 20 and truth["unauth"] > 300
    res = assess_leak(read_samples(SAMPLE / "samples.csv"))
    assert res.verdict == "leak" and len(res.restarts) == 1
    (restart,) = [json.loads(x) for x in (SAMPLE / "actions.jsonl").read_text().splitlines()]
    assert restart["outcome"] == "ok" and restart["details"]["report_lost"] is False
    assert "kill -KILL" not in " ".join(restart["commands"])
    assert "zeptoclaw-gateway" in restart["commands"][-1]  # the real binary was restarted
    report = parse_leak_file(SAMPLE / "leak_report.txt")
    assert report.n_records == truth["leak_report_records"]["kept"] == 100 and not report.truncated
    assert report.top_sites()[0].function == "parseRequest"


def test_real_sample_holds_no_token() -> None:
    banner = re.compile(r"(?i)(main|workspace) token: (?!\[REDACTED\])\S")
    hexes = re.compile(r"\b[0-9a-f]{32}\b")  # the gateway's own tokens are 32 hex digits
    for f in SAMPLE.iterdir():
        text = f.read_text(errors="replace")
        assert not banner.search(text), f
        assert not hexes.search(text), f
        assert "X-Auth-Token:" not in text and "GATEWAY_AUTH_TOKEN=" not in text, f
    journal = [json.loads(x) for x in (SAMPLE / "journal.jsonl").read_text().splitlines()]
    assert sum("Token: [REDACTED]" in e["MESSAGE"] for e in journal) == 4  # two banners, both redacted
