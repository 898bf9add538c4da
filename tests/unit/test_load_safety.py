"""Safety guard: loopback-only targets, rate and duration caps."""

from __future__ import annotations

import pytest

from quotaquake.errors import UsageError
from quotaquake.load.safety import MAX_DURATION_S, MAX_RATE, check_duration, check_rate, check_target


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.3.4.5/x", "http://localhost:1", "http://[::1]:80/"]
)
def test_loopback_targets_pass(url: str) -> None:
    check_target(url, allow_hosts=())


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "https://api.example.com", "http://0.0.0.0:80"])
def test_other_hosts_are_refused_with_a_hint(url: str) -> None:
    with pytest.raises(UsageError, match="--allow-host"):
        check_target(url, allow_hosts=())


def test_named_host_is_allowed() -> None:
    check_target("https://staging.example.com/api", allow_hosts=["Staging.Example.com"])


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8000", ""])
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="not an http"):
        check_target(url, allow_hosts=())


def test_rate_cap() -> None:
    check_rate(MAX_RATE)
    for bad in (0.0, -1.0, MAX_RATE + 1, float("nan")):
        with pytest.raises(UsageError, match="rate"):
            check_rate(bad)


def test_duration_cap() -> None:
    check_duration(MAX_DURATION_S)
    for bad in (0.0, MAX_DURATION_S + 1):
        with pytest.raises(UsageError, match="duration"):
            check_duration(bad)
