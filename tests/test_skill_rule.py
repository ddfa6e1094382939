"""One skill-name rule: the Python rule (zcnb.logs.skills), both counting engines and preflight agree on tricky names.

Each line below goes alone into a log file that the Python engine and the C engine summarise; per skill and form
their counts must be what :func:`skill_mentions` finds in the line, and preflight's form check must see the forms
those counts show. The expected names are spelled out too, so a rule that changes for all of them at once fails.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from zcnb.logs import summarize_logs
from zcnb.logs.native import native_status
from zcnb.logs.skills import canonical_skill, detect_skill_form, skill_mentions

sys.path.insert(0, str(Path(__file__).parent))

NATIVE, WHY = native_status()
TOOL = '[agent] tool skill args='

# (line, the invocations it holds as (form, canonical name))
TRICKY: list[tuple[str, list[tuple[str, str]]]] = [
    ("info: skill:git_workflow", [("token", "git-workflow")]),
    ("info: skill:Git-Workflow done", [("token", "git-workflow")]),
    ("info: skill:web2search", [("token", "web2search")]),  # digits: preflight's old rule missed them
    ("info: skill:9lives", [("token", "9lives")]),
    ("info: skill:web.search", [("token", "web")]),  # a dot ends the name
    ("info: skill:a/b", [("token", "a")]),
    ("info: skill:-x", [("token", "-x")]),
    ("info: skill:_", [("token", "-")]),
    ("info: skill:", []),
    ("info: skill:\u00e9t\u00e9", []),  # non-ASCII never starts a token name
    ("info: skill:caf\u00e9", [("token", "caf")]),
    ("info: myskill:inner", [("token", "inner")]),  # no word boundary, in every engine
    ("info: skillful:x", []),
    ("info: SKILL:upper", []),  # case-sensitive
    ("info: skill:skill:twice", [("token", "skill")]),  # non-overlapping
    ("info: skill:a and skill:b", [("token", "a"), ("token", "b")]),
    (f'info: {TOOL}{{"name":"git_workflow","command":"/git-status"}}', [("tool", "git-workflow")]),
    (f'info: {TOOL}{{"name": "Summarize Thread"}}', [("tool", "summarize-thread")]),
    (f'info: {TOOL}{{"name":\t"tabbed"}}', [("tool", "tabbed")]),
    (f'info: {TOOL}{{"command":"/x","name":"late"}}', [("tool", "late")]),
    (f'info: {TOOL}{{"name":""}}', []),  # an empty name is no invocation
    (f'info: {TOOL}{{"command":"/x"}}', []),  # preflight's old rule counted this line as the tool form
    (f'info: {TOOL}{{"name":"r\u00e9sum\u00e9"}}', [("tool", "r\u00e9sum\u00e9")]),
    (f'info: {TOOL}{{"name":"Code_Review"}} then skill:code-review', [("tool", "code-review"), ("token", "code-review")]),
    ('info: [agent] tool  skill args={"name":"two-spaces"}', []),
    ('info: [Agent] tool skill args={"name":"capital"}', []),
    (f'info: {TOOL}{{"x":1}} {TOOL}{{"name":"second"}}', [("tool", "second")]),
]


def _forms(pairs: list[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return Counter((name, form) for form, name in pairs)


def _engine_forms(path: Path, engine: str) -> Counter[tuple[str, str]]:
    summary = summarize_logs(path, engine=engine)
    out: Counter[tuple[str, str]] = Counter()
    for row in summary.skills.itertuples():
        if row.token_form:
            out[(str(row.skill), "token")] += int(row.token_form)
        if row.tool_form:
            out[(str(row.skill), "tool")] += int(row.tool_form)
    return out


@pytest.mark.parametrize("line,expected", TRICKY, ids=[f"line{i}" for i in range(len(TRICKY))])
def test_python_rule_engines_and_preflight_agree(tmp_path: Path, line: str, expected: list[tuple[str, str]]) -> None:
    assert skill_mentions(line) == expected
    path = tmp_path / "one.log"
    path.write_text(line + "\n", encoding="utf-8")
    assert _engine_forms(path, "python") == _forms(expected)
    if NATIVE:
        assert _engine_forms(path, "native") == _forms(expected)
    form, tokens, tools = detect_skill_form([line])
    has_token = any(f == "token" for f, _ in expected)
    has_tool = any(f == "tool" for f, _ in expected)
    assert (tokens, tools) == (int(has_token), int(has_tool))
    assert form == ("both" if has_token and has_tool else "skill:NAME" if has_token else
                    "tool skill" if has_tool else None)


@pytest.mark.skipif(not NATIVE, reason=f"zcnb.logs._scan not built ({WHY})")
def test_all_tricky_lines_in_one_log(tmp_path: Path) -> None:
    """The same lines in one file: both engines count what the rule finds, line by line."""
    path = tmp_path / "all.log"
    path.write_text("".join(line + "\n" for line, _ in TRICKY), encoding="utf-8")
    want: Counter[tuple[str, str]] = Counter()
    for line, _ in TRICKY:
        want += _forms(skill_mentions(line))
    assert _engine_forms(path, "python") == want == _engine_forms(path, "native")


def test_canonical_form() -> None:
    assert canonical_skill(" Git_Workflow ") == "git-workflow" == canonical_skill("git workflow")
