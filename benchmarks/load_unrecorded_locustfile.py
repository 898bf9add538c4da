"""The tiered scenario without its history, for benchmarks/load_generator.py: the open model (schedule,
traffic mix, request context) exactly as ``scenarios/tiered.py`` runs it, with the recorder left out, so
``recorded - unrecorded`` is what recording costs and ``unrecorded - plain`` what the open model costs.

Benchmark only: the history recorder is replaced by one that is never attached to Locust's events.
"""

from pathlib import Path
from typing import Any

from locust import events

from quotaquake.load import hooks
from quotaquake.load.options import ScenarioDefaults
from quotaquake.load.recorder import HistoryRecorder
from quotaquake.load.shapes import SelectedShape
from quotaquake.load.users import OpenModelUser
from quotaquake.runfolder import RunFolder


def unattached_recorder(environment: Any) -> HistoryRecorder:
    """A recorder that never sees a request (the master/worker wiring still finds one)."""
    del environment
    return HistoryRecorder(folder=lambda: RunFolder(Path("/nonexistent")))


hooks.install_recorder = unattached_recorder
hooks.install_scenario(events, ScenarioDefaults(rate=100.0, shape="steady"))


class UnrecordedUser(OpenModelUser):
    """A client of the tiered mix whose requests are not recorded."""


__all__ = ["SelectedShape", "UnrecordedUser"]
