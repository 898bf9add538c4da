"""Monthly quota exhaustion: chosen consumers start with their monthly counter near the limit.

Before the first request the master seeds each chosen consumer's monthly usage to
``per_month - --qq-month-headroom`` (``quotaquake.load.month.seed_month_quota``) in the counter the target
reads: the embedded limiter's month key, or Kong's own ``ratelimit:...:<consumer id>:<month start>:month``
key for a Kong target (whole requests). The seeds are recorded in ``engine.json`` (``monthly_seeds``), so
verification starts the month at exactly the seed; the run then pushes the consumers over the monthly
limit. An external target's Redis is not reachable from here: it cannot be seeded.

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
