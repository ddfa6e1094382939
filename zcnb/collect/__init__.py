"""Collect: what the gateway's memory is doing, read from the target itself.

``process`` (find the gateway; RSS/VMS/USS/PSS, cgroup memory), ``metrics`` (its /metrics),
``prometheus`` (history of a fleet), ``sampling`` (the fixed-rate sampler) writing ``samples_csv``
files, and ``preflight`` (the runbook's assumptions checked against the target). Import from the modules.
"""
