"""Bursts well over quota: a few free and pro consumers fire far more than their per-minute limits.

Default: 2 consumers per tier, 60 req/s peak in spikes (``--qq-shape spike``): a free consumer allowed
100/min (bucket 150) receives ~15 req/s in the spike, so most of its requests must get 429.

    locust -f scenarios/burst.py --headless --run-time 60s
"""

from locust import events

from quotaquake.load.hooks import install_scenario
from quotaquake.load.options import ScenarioDefaults
from quotaquake.load.shapes import SelectedShape
from quotaquake.load.users import OpenModelUser

install_scenario(
    events,
    ScenarioDefaults(
        rate=60.0, shape="spike", tiers="free=1,pro=1", endpoints="/identify=3,/compare=1", consumers_per_tier=2
    ),
)


class BurstUser(OpenModelUser):
    """Sends for the chosen over-quota consumers."""


__all__ = ["BurstUser", "SelectedShape"]
