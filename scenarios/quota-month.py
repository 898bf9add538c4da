"""Monthly quota exhaustion: chosen consumers start with their monthly counter near the limit.

Before the first request the master seeds each chosen consumer's monthly usage to
``per_month - --qq-month-headroom`` cost units (``quotaquake.load.month.seed_month_quota``) and records the
seeds in ``run.json`` (``monthly_seeds``); the run then pushes them over the monthly limit.

    locust -f scenarios/quota-month.py --headless --run-time 20s
"""

from locust import events

from quotaquake.load.hooks import install_scenario
from quotaquake.load.month import seed_month_quota
from quotaquake.load.options import ScenarioDefaults
from quotaquake.load.shapes import SelectedShape
from quotaquake.load.users import OpenModelUser

install_scenario(
    events,
    ScenarioDefaults(rate=20.0, shape="steady", tiers="free=1,pro=1", endpoints="/identify=1", consumers_per_tier=2),
    before_start=seed_month_quota,
)


class MonthQuotaUser(OpenModelUser):
    """Sends for the seeded consumers until their monthly quota is gone."""


__all__ = ["MonthQuotaUser", "SelectedShape"]
