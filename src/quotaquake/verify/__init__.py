"""Verification: models (token bucket, fixed window) and checkers that judge a recorded run."""

from quotaquake.verify.verdict import Outcome, Status, Verdict, compose

__all__ = ["Outcome", "Status", "Verdict", "compose"]
