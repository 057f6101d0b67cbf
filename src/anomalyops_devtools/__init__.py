"""Tools for running the system on one machine: the demo (``make run``) and a local SMTP sink.

Not part of any deployable's runtime: the compose deployment and the scoring image use neither.
"""
