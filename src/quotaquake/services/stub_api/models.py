"""Request and response bodies of the stub fingerprint API (pydantic v2).

A fingerprint is what a browser fingerprinting script collects: only ``user_agent`` is required, so a
load generator can send a small valid body such as ``{"user_agent": "Mozilla/5.0"}``. Unknown fields are
ignored (real collectors send more than any server reads); wrong types and out-of-range values are 422.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 100  # fingerprints per POST /batch

ShortText = Annotated[str, Field(max_length=256)]


class Screen(BaseModel):
    """Screen geometry in CSS pixels; ``pixel_ratio`` is devicePixelRatio."""

    model_config = ConfigDict(frozen=True)

    width: int = Field(ge=1, le=16384)
    height: int = Field(ge=1, le=16384)
    color_depth: int = Field(default=24, ge=1, le=48)
    pixel_ratio: float = Field(default=1.0, gt=0, le=8)


class Fingerprint(BaseModel):
    """Browser attributes collected client-side. Hashes are hex digests computed by the collector."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_agent: str = Field(min_length=1, max_length=1024)
    language: ShortText | None = None
    languages: list[ShortText] = Field(default_factory=list, max_length=32)
    timezone: ShortText | None = None  # IANA name, e.g. "Europe/Berlin"
    timezone_offset_minutes: int | None = Field(default=None, ge=-840, le=840)
    screen: Screen | None = None
    platform: ShortText | None = None
    hardware_concurrency: int | None = Field(default=None, ge=1, le=1024)
    device_memory_gb: float | None = Field(default=None, gt=0, le=1024)
    canvas_hash: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{8,128}$")
    webgl_vendor: ShortText | None = None
    webgl_renderer: ShortText | None = None
    audio_hash: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{8,128}$")
    fonts: list[ShortText] = Field(default_factory=list, max_length=1000)
    plugins: list[ShortText] = Field(default_factory=list, max_length=200)
    touch_support: bool | None = None
    cookies_enabled: bool | None = None
    do_not_track: bool | None = None


class IdentifyResponse(BaseModel):
    """``visitor_id`` is stable for equal identifying attributes; ``confidence`` is in [0, 1]."""

    visitor_id: str
    confidence: float = Field(ge=0, le=1)
    matched_attributes: list[str]


class CompareRequest(BaseModel):
    left: Fingerprint
    right: Fingerprint


class CompareResponse(BaseModel):
    """``similarity`` in [0, 1]: weighted share of attributes present in either side that are equal."""

    similarity: float = Field(ge=0, le=1)
    same_visitor: bool
    matched_attributes: list[str]
    differing_attributes: list[str]


class BatchRequest(BaseModel):
    fingerprints: list[Fingerprint] = Field(min_length=1, max_length=MAX_BATCH)


class BatchResponse(BaseModel):
    """One result per fingerprint, in request order."""

    count: int
    results: list[IdentifyResponse]


class HealthResponse(BaseModel):
    status: str
    service: str
    uptime_s: float


class ErrorResponse(BaseModel):
    """Body of an injected error (``x-quotaquake-injected: true`` header marks it)."""

    error: str
    status: int
