"""Soak: a long steady run of the tiered mix at a moderate rate (quota accuracy and leaks over time).

locust -f scenarios/soak.py --headless --run-time 1h --qq-rate 300
"""

from locust import events

from quotaquake.load.hooks import install_scenario
from quotaquake.load.options import ScenarioDefaults
from quotaquake.load.shapes import SelectedShape
from quotaquake.load.users import OpenModelUser

install_scenario(events, ScenarioDefaults(rate=300.0, shape="steady"))


class SoakUser(OpenModelUser):
    """A client of the tiered mix at a constant rate."""


__all__ = ["SelectedShape", "SoakUser"]
