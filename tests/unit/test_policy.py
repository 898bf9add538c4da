from pathlib import Path

import pytest

from quotaquake.errors import ConfigError
from quotaquake.policy import load_policy, refill_per_second

REPO = Path(__file__).resolve().parents[2]


def test_default_policy_is_the_seeds_quota_table():
    policy = load_policy(REPO / "stack" / "policy.yaml")
    free, pro = policy.tiers["free"], policy.tiers["pro"]
    assert (free.per_minute, free.per_month) == (100, 50_000)
    assert (pro.per_minute, pro.per_month) == (1000, 1_000_000)
    assert policy.tiers["enterprise"].unlimited and policy.tiers["partner"].unlimited
    assert policy.capacity(free) == 150.0
    assert refill_per_second(free) == pytest.approx(100 / 60)
    assert [policy.cost_of(p) for p in ("/identify", "/compare", "/batch", "/health")] == [1.0, 2.0, 1.0, 0.0]
    assert policy.cost_of("/identify?x=1") == 1.0
    assert policy.cost_of("/unknown") == policy.default_cost


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("tiers: {free: {per_minute: -1}}\nendpoints: {}", "tiers.free.per_minute", "greater than 0"),
        ("tiers: {}\nendpoints: {}", "tiers", "at least one tier"),
        ("tiers: {free: {per_minute: 1}}\nendpoints: {identify: {cost: 1}}", "endpoints", "must start with '/'"),
        (
            "tiers: {free: {per_minute: 1}}\nendpoints: {}\nbucket: {burst_factor: 0.5}",
            "bucket.burst_factor",
            "greater than or equal to 1",
        ),
        ("tiers: {free: {per_minute: 1, per_day: 3}}\nendpoints: {}", "tiers.free.per_day", "Extra inputs"),
        ("tiers: [", "line 1", "not valid YAML"),
    ],
)
def test_bad_policy_names_file_and_field(tmp_path, text, field, problem):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}")
    assert problem.lower() in message.lower()
    assert "\n" not in message


def test_missing_policy_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_policy(tmp_path / "nope.yaml")
