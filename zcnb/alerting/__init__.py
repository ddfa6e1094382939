"""From alert to report: ``zcnb receiver``, the Alertmanager webhook that runs the runbook's first stages.

- :mod:`zcnb.alerting.alerts`: webhook payloads, and the alert events an incident's timeline shows.
- :mod:`zcnb.alerting.runs`: the run queue (dedup per fingerprint, one run per gateway, a bounded queue).
- :mod:`zcnb.alerting.incidentrun`: what one run does: collect from Prometheus and the log, then ``zcnb
  report`` with the non-destructive stages.
- :mod:`zcnb.alerting.receiver`: the HTTP server and its status page.

The series and rules it acts on are :mod:`zcnb.monitor`'s. Nothing is imported here: ``import zcnb.alerting``
stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
