"""Names as a summary shows them: skill, tool and request names redacted as the log wrote them, then skills in
their canonical form (the skill-name rule of :mod:`zcnb.logs.skills`).

Both engines keep names raw in their tallies (:class:`zcnb.logs.scan.Acc`); this is the one place that turns them
into shown names, so a secret logged as a skill name (``skill:<token>``) meets the redactor in the case it was
written in, whichever engine counted it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable

from .scan import Acc
from .skills import shown_skill

__all__ = ["keep", "shown_names"]


def keep(text: str) -> str:
    """No redaction (names as logged)."""
    return text


def shown_names(acc: Acc, redact: Callable[[str], str] = keep) -> Acc:
    """``acc`` with skill, tool and request names as a summary shows them: each name redacted as the log wrote it,
    then skills in their canonical form (:func:`zcnb.logs.skills.shown_skill`); names that become one are merged.

    The scans keep names raw (any case): a secret written as a skill name (``skill:<token>``) is only found
    by the redactor before it is lowered. Per-bucket columns are renamed the same way.
    """
    memo: dict[str, str] = {}

    def skill(name: str) -> str:
        out = memo.get(name)
        if out is None:
            out = memo[name] = shown_skill(name, redact)
        return out

    plain: dict[str, str] = {}

    def other(name: str) -> str:
        out = plain.get(name)
        if out is None:
            out = plain[name] = redact(name)
        return out

    def column(key: tuple[str, ...]) -> tuple[str, ...]:
        if key[0] == "skill":
            return ("skill", skill(key[1]), key[2])
        for prefix in ("tool:", "request:"):
            if key[0].startswith(prefix):
                return (prefix + other(key[0][len(prefix):]),)
        return key

    def renamed(counts: Counter[str], name: Callable[[str], str]) -> Counter[str]:
        out: Counter[str] = Counter()
        for k, n in counts.items():
            out[name(k)] += n
        return out

    forms: Counter[tuple[int, str, str]] = Counter()
    for (b, name, form), n in acc.bucket_skill_forms.items():
        forms[(b, skill(name), form)] += n
    buckets: Counter[tuple[int, str]] = Counter()
    for (b, activity), n in acc.buckets.items():
        buckets[(b, column((activity,))[0])] += n
    return dataclasses.replace(
        acc, skills_token=renamed(acc.skills_token, skill), skills_tool=renamed(acc.skills_tool, skill),
        tools=renamed(acc.tools, other), requests=renamed(acc.requests, other), bucket_skill_forms=forms,
        buckets=buckets, bucket_arrays=[(b, c, n, [column(tuple(k)) for k in keys])
                                        for b, c, n, keys in acc.bucket_arrays])
