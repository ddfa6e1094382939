"""From alert to report: a Prometheus exporter for gateways, alert rules, and an Alertmanager receiver.

- :mod:`zcnb.alerting.targets`: which gateways on this host, how to find each process and its log.
- :mod:`zcnb.alerting.logcount`: incremental log counting (journal follower, log-file tail).
- :mod:`zcnb.alerting.exporter`: the ``zcnb exporter`` collector and server (reads /proc and logs only).
- :mod:`zcnb.alerting.rules`: the ``zcnb alert-rules`` rules file.
- :mod:`zcnb.alerting.runs`, :mod:`zcnb.alerting.incidentrun`, :mod:`zcnb.alerting.receiver`: the
  ``zcnb receiver`` webhook, its run queue, and the non-destructive stages it runs on a leak alert.

Nothing is imported here: ``import zcnb.alerting`` stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
