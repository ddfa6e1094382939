"""The skill-name rule: what a skill invocation looks like in the gateway's log, and its one display name.

Every counter of skills follows it: the Python engine (:mod:`zcnb.logs.scan`, whose bracket-tag regex is
built from :data:`TOOL_SKILL_ARGS`), the C engine (``zcnb/logs/_scan.c``: its ``is_name`` is
:data:`SKILL_NAME_CHARS`, its ``scan_tag`` the tool form below), preflight's check of which form the log
uses, and the log filter of stage 03. ``tests/test_skill_rule.py`` feeds all of them the same tricky names.

Two forms (TARGET.md):

- the runbook's token ``skill:NAME``, anywhere in a line, NAME being one or more of ``A-Z a-z 0-9 _ -``
  (it ends at any other character: ``skill:web.search`` is ``web``);
- the real gateway's ``[agent] tool skill args={..."name": "NAME"...}``: the first ``"name":`` key on the
  line after ``args=`` whose string value closes on that line; an empty name is no invocation.

Names are shown in one canonical form (:func:`canonical_skill`): lower case, ``_`` and spaces as ``-``,
so ``git_workflow``, ``Git-Workflow`` and ``git-workflow`` are one skill, the runbook's spelling. A name is
redacted before that (:func:`shown_skill`): a secret logged as a skill name (``skill:<the gateway token>``)
must meet the redactor in the case it was written in, or a case-sensitive rule (the token's literal value)
would miss its lowered form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["SKILL_NAME_CHARS", "SKILL_TOKEN_RE", "TOOL_SKILL_ARGS", "canonical_skill", "detect_skill_form",
           "shown_skill", "skill_mentions"]

SKILL_NAME_CHARS = "A-Za-z0-9_-"  # the C engine's is_name(): [A-Za-z0-9_-]
#: ``skill:NAME`` over bytes (the engines scan bytes); group 1 is NAME.
SKILL_TOKEN_RE = re.compile(rb"skill:([" + SKILL_NAME_CHARS.encode() + rb"]+)")
#: The tool form after ``[agent] tool ``; group 1 is NAME (``[^\n]*?``: the first "name" key that completes).
TOOL_SKILL_ARGS = rb'skill args=[^\n]*?"name":[ \t\r\f\v]*"([^"\n]*)"'
_TOOL_SKILL_RE = re.compile(rb"\[agent\] tool " + TOOL_SKILL_ARGS)
_FORMS = {"token": "skill:NAME", "tool": "tool skill"}


def canonical_skill(name: str) -> str:
    """One display form for skill names: lower case, hyphenated (``git_workflow`` -> ``git-workflow``)."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def shown_skill(name: str, redact: Callable[[str], str]) -> str:
    """The name a summary shows for a skill name as logged: redacted first; a name the redactor changed is shown
    as the redactor left it (the mask is not lowered), any other in its canonical form."""
    clean = redact(name)
    return canonical_skill(name) if clean == name else clean


def skill_mentions(line: str | bytes) -> list[tuple[str, str]]:
    """The skill invocations in one log line, in order: ``(form, canonical name)``, form ``token`` or ``tool``."""
    raw = line.encode("utf-8", "replace") if isinstance(line, str) else line
    found = [(m.start(), "token", m.group(1).decode("ascii")) for m in SKILL_TOKEN_RE.finditer(raw)]
    found += [(m.start(), "tool", m.group(1).decode("utf-8", "replace")) for m in _TOOL_SKILL_RE.finditer(raw)
              if m.group(1)]
    return [(form, canonical_skill(name)) for _pos, form, name in sorted(found)]


def detect_skill_form(lines: Iterable[str]) -> tuple[str | None, int, int]:
    """(form, count of lines with a ``skill:NAME`` token, count of lines with a ``[agent] tool skill`` call).

    The form is ``"skill:NAME"``, ``"tool skill"``, ``"both"`` or None when no line has an invocation.
    """
    tokens = tools = 0
    for line in lines:
        forms = {form for form, _name in skill_mentions(line)}
        tokens += "token" in forms
        tools += "tool" in forms
    form = "both" if tokens and tools else _FORMS["token"] if tokens else _FORMS["tool"] if tools else None
    return form, tokens, tools
