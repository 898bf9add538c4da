"""Settings of the stub API process, and the command line that sets them.

Bad options give one ``UsageError`` line naming the option, e.g.
``--port: must be between 1 and 65535 (got 0)``; ``python -m quotaquake.services.stub_api`` prints it and
exits with code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quotaquake.errors import UsageError

SETTINGS_ENV_VAR = "QUOTAQUAKE_STUB_API_SETTINGS"  # JSON settings handed to worker processes


class StubSettings(BaseModel):
    """What the stub API does. Latency in milliseconds; ``error_rate`` is a probability per request."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    latency_median_ms: float = Field(default=2.0, ge=0, le=60_000)
    latency_sigma: float = Field(default=0.5, ge=0, le=5)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=500, ge=400, le=599)
    seed: int = 0
    workers: int = Field(default=1, ge=1, le=64)


class _OneLineParser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"stub-api: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m quotaquake.services.stub_api",
        description="Stub fingerprint API (FastAPI on uvicorn) with a lognormal latency model and error "
        "injection. POST bodies are required: a missing or empty body answers 422.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, required=True, help="TCP port to bind, 1-65535")
    add("--latency-median-ms", type=float, default=2.0, help="median simulated latency, ms (0 = none)")
    add("--latency-sigma", type=float, default=0.5, help="lognormal sigma of the latency (0 = constant)")
    add("--error-rate", type=float, default=0.0, help="probability of answering --error-status, 0-1")
    add("--error-status", type=int, default=500, help="HTTP status of injected errors, 400-599")
    add("--seed", type=int, default=0, help="seed of the latency and error streams")
    add("--workers", type=int, default=1, help="worker processes (default 1)")
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> StubSettings:
    """Parse the command line into validated settings; any problem is a one-line ``UsageError``."""
    args = vars(build_parser().parse_args(argv))
    try:
        return StubSettings(**args)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-")
        raise UsageError(f"stub-api: {option}: {_lower_first(first['msg'])} (got {first['input']!r})") from None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
