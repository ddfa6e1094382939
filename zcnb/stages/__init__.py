"""One helper module per stage notebook: what each notebook cell calls.

``confirm`` (01), ``mitigate`` (02), ``diagnose`` (03), ``restore`` (04), ``report`` (05,
:class:`~zcnb.stages.report.IncidentReport`), ``escalate`` (06). Import the module a notebook needs.
"""
