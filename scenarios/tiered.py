"""Tiered traffic: the seed's tier mix and endpoint mix, keyless clients and a trickle of invalid keys.

Open model: ``--qq-rate`` req/s in total (peak of ``--qq-shape``), every request recorded to
``<--qq-out>/history/``. Reads the stack from ``--qq-state`` / ``$QUOTAQUAKE_STATE``.

    locust -f scenarios/tiered.py --headless --run-time 30s --qq-rate 500
    locust -f scenarios/tiered.py --qq-tiers free=1,pro=1 --qq-endpoints /identify=3,/compare=1
    locust -f scenarios/tiered.py --headless --run-time 10s --qq-target calibrate --qq-rate 10000 --processes 2
"""

from locust import events

from quotaquake.load.hooks import install_scenario
from quotaquake.load.options import ScenarioDefaults
from quotaquake.load.shapes import SelectedShape
from quotaquake.load.users import OpenModelUser

install_scenario(events, ScenarioDefaults(rate=100.0, shape="steady"))


class TieredUser(OpenModelUser):
    """A client of the mix: each request picks tier, caller and endpoint by weight."""


__all__ = ["SelectedShape", "TieredUser"]
