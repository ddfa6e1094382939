"""The zcnb error tree.

Every error says what was wrong and what to do next; context lives in attributes
(``pid=``, ``path=``, ``url=`` ...). All errors are picklable (papermill and
multiprocessing move them between processes).

    ZcnbError
    ├── ConfigError                 bad settings, parameters or arguments
    ├── DataError                   unreadable / malformed input data
    │   ├── SamplesFormatError      samples CSV
    │   ├── MetricsFormatError      Prometheus exposition text
    │   ├── LogFormatError          journal / log input
    │   └── LeakReportError         leak report text
    ├── TargetError                 the gateway could not be observed
    │   ├── ProcessNotFound         no matching process
    │   ├── ProcessAmbiguous        several processes match the pattern equally well
    │   ├── ProcessAccessDenied     /proc not readable for that pid
    │   ├── EndpointUnreachable     connection refused / timeout
    │   ├── EndpointAuthError       401 (missing or wrong X-Auth-Token)
    │   ├── EndpointRateLimited     connection closed with no reply
    │   ├── EndpointBodyTooLarge    reply body over the size cap
    │   └── RequestBudgetExhausted  zcnb's own request budget for the gateway is used up: not sent
    ├── OutputWriteError            an output file could not be written (disk full, read-only)
    ├── AnalysisError               not enough / unusable data to analyse
    ├── ServiceError                service control failed
    │   ├── UnitNotFound
    │   ├── ServicePermissionError
    │   ├── CommandFailed
    │   └── ActionTimeout
    ├── StateError                  backups, restore, rollback
    │   ├── BackupInvalid
    │   └── UnsafePath
    ├── PlanError                   plan/confirm mismatch for a destructive step
    ├── PrometheusError             Prometheus HTTP API errors
    └── ReportError                 a report stage failed
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActionTimeout",
    "AnalysisError",
    "BackupInvalid",
    "CommandFailed",
    "ConfigError",
    "DataError",
    "EndpointAuthError",
    "EndpointBodyTooLarge",
    "EndpointRateLimited",
    "EndpointUnreachable",
    "LeakReportError",
    "LogFormatError",
    "MetricsFormatError",
    "OutputWriteError",
    "PlanError",
    "ProcessAccessDenied",
    "ProcessAmbiguous",
    "ProcessNotFound",
    "PrometheusError",
    "ReportError",
    "RequestBudgetExhausted",
    "SamplesFormatError",
    "ServiceError",
    "ServicePermissionError",
    "StateError",
    "TargetError",
    "UnitNotFound",
    "UnsafePath",
    "ZcnbError",
]


class ZcnbError(Exception):
    """Base of every zcnb error.

    ``message`` says what went wrong, ``hint`` what to do next; keyword context
    (``path=...``, ``pid=...``) becomes attributes and is kept when pickled.
    """

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        self.message = message
        self.hint = hint
        self.context = dict(context)
        for key, value in context.items():
            setattr(self, key, value)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} -- {self.hint}"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.hint, self.context))


def _rebuild(cls: type[ZcnbError], message: str, hint: str | None, context: dict[str, Any]) -> ZcnbError:
    return cls(message, hint=hint, **context)


class ConfigError(ZcnbError):
    """Bad settings, parameters or command-line arguments."""


class DataError(ZcnbError):
    """Input data could not be read or understood."""


class SamplesFormatError(DataError):
    """A samples CSV is malformed."""


class MetricsFormatError(DataError):
    """A /metrics reply is not valid Prometheus/OpenMetrics exposition text."""


class LogFormatError(DataError):
    """Journal or log input could not be read."""


class LeakReportError(DataError):
    """A leak report could not be parsed."""


class TargetError(ZcnbError):
    """The gateway (process or endpoint) could not be observed."""


class ProcessNotFound(TargetError):
    """No process matched the given pid, pid file, unit or pattern."""


class ProcessAmbiguous(TargetError):
    """Several processes match the pattern and none is preferred: zcnb refuses to guess (``candidates=``)."""


class ProcessAccessDenied(TargetError):
    """The process exists but its /proc entries are not readable."""


class EndpointUnreachable(TargetError):
    """Connection refused, reset or timed out."""


class EndpointAuthError(TargetError):
    """The endpoint answered 401: missing or wrong X-Auth-Token."""


class EndpointRateLimited(TargetError):
    """The endpoint closed the connection without a reply (rate limit)."""


class EndpointBodyTooLarge(TargetError):
    """The endpoint's reply body exceeded the size cap (not read further)."""


class RequestBudgetExhausted(TargetError):
    """The request was not sent: the shared per-gateway request budget had no free slot in time."""


class OutputWriteError(ZcnbError):
    """An output file could not be written (disk full, read-only, permissions)."""


class AnalysisError(ZcnbError):
    """The data cannot be analysed as asked."""


class ServiceError(ZcnbError):
    """Service control failed."""


class UnitNotFound(ServiceError):
    """The unit (or supervised service) does not exist."""


class ServicePermissionError(ServiceError):
    """Not allowed to control the service."""


class CommandFailed(ServiceError):
    """An external command exited non-zero."""


class ActionTimeout(ServiceError):
    """An action did not finish in time."""


class StateError(ZcnbError):
    """State, backup, restore or rollback problem."""


class BackupInvalid(StateError):
    """A backup failed verification."""


class UnsafePath(StateError):
    """A path escapes the folder it must stay in (``..``, absolute, symlink out)."""


class PlanError(ZcnbError):
    """A destructive plan was applied without the matching confirmation."""


class PrometheusError(ZcnbError):
    """The Prometheus HTTP API returned an error or could not be reached."""


class ReportError(ZcnbError):
    """A report stage failed."""
