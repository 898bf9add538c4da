"""Checks: pure functions from a loaded run (``verify.data``) and thresholds to a ``Verdict``."""
