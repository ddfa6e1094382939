"""Redaction of secrets in log text, applied before anything is stored or displayed.

Covered: token lines of the gateway banner (``Main Token: ...``) and any ``...Token: value`` /
``...token=value``, ``X-Auth-Token`` headers, ``Bearer ...``, NVIDIA ``nvapi-...`` and OpenAI-style
``sk-...`` keys, JSON fields named like ``"token"``/``"api_key"``/``"password"``/``"secret"``, plus
configured extra patterns (``Settings.redact_patterns``) and explicit secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import Secret
from .exceptions import ConfigError

__all__ = ["REDACTED", "Redactor", "default_redactor", "redact"]

REDACTED = "[REDACTED]"

# (pattern, replacement); group 1 (when present) is kept so the reader still sees *what* was hidden.
_BUILTIN: tuple[tuple[str, str], ...] = (
    (r'("[\w-]*(?:token|secret|password|passwd|api[_-]?key|apikey)[\w-]*"\s*:\s*)"(?:[^"\\\n]|\\.)*"', r'\1"' + REDACTED + '"'),
    (r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+", r"\1" + REDACTED),
    (r"(?i)(\b[\w-]*(?:token|secret|password|api[_-]?key)\s*[:=]\s*)(?!\[REDACTED\])(?!\(none)[^\s,;\"']+", r"\1" + REDACTED),
    (r"\bnvapi-[A-Za-z0-9_-]{8,}", REDACTED),
    (r"\bsk-[A-Za-z0-9_-]{8,}", REDACTED),
)
# Every match of a built-in pattern contains one of these (lower-cased): test them before substituting.
def _may_hold_secret(low: str) -> bool:
    """True when some built-in pattern could match (every match contains one of these, lower-cased)."""
    return (("token" in low and ("token:" in low or "token=" in low or 'token"' in low or "token " in low))
            or "secret" in low or "passw" in low or "key" in low or "bearer" in low or "sk-" in low
            or "nvapi-" in low)


@dataclass(frozen=True)
class Redactor:
    """Replaces secrets in text; build with :meth:`create` (compiles the patterns once)."""

    patterns: tuple[str, ...] = ()
    secret_count: int = 0
    _compiled: tuple[tuple[re.Pattern[str], str], ...] = field(default=(), repr=False, compare=False)
    _extra: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def create(cls, *, patterns: Iterable[str] = (), secrets: Iterable[str | Secret | None] = ()) -> Redactor:
        """A redactor with the built-in rules, extra regex ``patterns`` and literal ``secrets``."""
        pats = tuple(patterns)
        extra: list[re.Pattern[str]] = []
        for p in pats:
            try:
                extra.append(re.compile(p))
            except re.error as exc:
                raise ConfigError(f"redaction pattern {p!r} is not a valid regular expression ({exc})",
                                  hint="fix redact_patterns in the zcnb config") from None
        values = [s.reveal() if isinstance(s, Secret) else s for s in secrets]
        literal = sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)
        if literal:  # explicit values first: they may not look like any known token format
            extra.insert(0, re.compile("|".join(re.escape(v) for v in literal)))
        compiled = tuple((re.compile(p), r) for p, r in _BUILTIN)
        return cls(patterns=pats, secret_count=len(literal), _compiled=compiled, _extra=tuple(extra))

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``[REDACTED]``."""
        for rx in self._extra:
            text = rx.sub(REDACTED, text)
        if not _may_hold_secret(text.lower()):  # substring tests are far cheaper than the regexes
            return text
        for rx, repl in self._compiled:
            text = rx.sub(repl, text)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        """Byte version (decodes with replacement, so invalid UTF-8 survives as U+FFFD)."""
        return self.redact(data.decode("utf-8", "replace")).encode("utf-8")

    def to_dict(self) -> dict[str, object]:
        # never the secret values themselves, only how many there are
        return {"patterns": list(self.patterns), "secret_values": self.secret_count}

    def _repr_markdown_(self) -> str:
        return f"Redactor: {len(_BUILTIN)} built-in rules, {len(self.patterns)} extra patterns, {self.secret_count} known secret values"


def default_redactor() -> Redactor:
    """Built-in rules plus ``Settings.redact_patterns`` and the gateway token from the environment."""
    from .config import load_settings

    try:
        settings = load_settings()
        token = settings.token()
        return Redactor.create(patterns=settings.redact_patterns, secrets=[token] if token else [])
    except ConfigError:
        return Redactor.create()


def redact(text: str, *, patterns: Iterable[str] = (), secrets: Iterable[str | Secret | None] = ()) -> str:
    """One-off redaction of ``text`` (build a :class:`Redactor` for repeated use)."""
    return Redactor.create(patterns=patterns, secrets=secrets).redact(text)
