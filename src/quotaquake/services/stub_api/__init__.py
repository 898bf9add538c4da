"""Stub fingerprint API: the upstream the gateway proxies to (FastAPI, served by uvicorn).

Run it with ``python -m quotaquake.services.stub_api --port P``; build it in-process with
``create_app(StubSettings(...))``. ``EXAMPLE_FINGERPRINT`` is a small valid /identify body.
"""

from __future__ import annotations

from quotaquake.services.stub_api.app import create_app
from quotaquake.services.stub_api.faults import ErrorInjector, LatencyModel, lognormal_delays_ms
from quotaquake.services.stub_api.models import Fingerprint
from quotaquake.services.stub_api.settings import StubSettings, parse_settings

EXAMPLE_FINGERPRINT: dict[str, object] = {
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "timezone": "Europe/Berlin",
    "screen": {"width": 1920, "height": 1080},
    "canvas_hash": "9f86d081884c7d65",
}

__all__ = [
    "EXAMPLE_FINGERPRINT",
    "ErrorInjector",
    "Fingerprint",
    "LatencyModel",
    "StubSettings",
    "create_app",
    "lognormal_delays_ms",
    "parse_settings",
]
