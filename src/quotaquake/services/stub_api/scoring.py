"""Deterministic fingerprint scoring: visitor ids, confidence and similarity.

Each identifying attribute carries a weight (the weights sum to 1.0): attributes that vary most between
devices (canvas, WebGL, audio, fonts) weigh most. Scores are rounded to 4 decimals.
"""

from __future__ import annotations

import hashlib
from typing import Final

from quotaquake.services.stub_api.models import CompareResponse, Fingerprint, IdentifyResponse

ATTRIBUTE_WEIGHTS: Final[dict[str, float]] = {
    "canvas_hash": 0.20,
    "webgl_renderer": 0.10,
    "webgl_vendor": 0.05,
    "audio_hash": 0.10,
    "fonts": 0.15,
    "user_agent": 0.10,
    "screen": 0.08,
    "timezone": 0.06,
    "language": 0.04,
    "platform": 0.04,
    "hardware_concurrency": 0.04,
    "device_memory_gb": 0.04,
}
_ATTRIBUTE_NAMES: Final = tuple(ATTRIBUTE_WEIGHTS)
SAME_VISITOR_THRESHOLD: Final = 0.9  # similarity at or above which two fingerprints are one visitor


def present_attributes(fingerprint: Fingerprint) -> list[str]:
    """Weighted attributes that the fingerprint carries (not None, not empty), heaviest first."""
    values = fingerprint.__dict__
    return [name for name in _ATTRIBUTE_NAMES if _is_present(values[name])]


def visitor_id(fingerprint: Fingerprint, present: list[str] | None = None) -> str:
    """``fp_`` + 20 hex chars of BLAKE2b over the JSON of the present identifying attributes.

    Stable: equal identifying attributes give the same id (field order is the model's, not the client's).
    """
    include = set(present if present is not None else present_attributes(fingerprint))
    canonical = fingerprint.model_dump_json(include=include).encode()
    return f"fp_{hashlib.blake2b(canonical, digest_size=10).hexdigest()}"


def identify(fingerprint: Fingerprint) -> IdentifyResponse:
    """Visitor id, confidence (sum of the weights of present attributes) and the attributes used."""
    matched = present_attributes(fingerprint)
    confidence = round(min(1.0, sum(ATTRIBUTE_WEIGHTS[name] for name in matched)), 4)
    return IdentifyResponse(
        visitor_id=visitor_id(fingerprint, matched), confidence=confidence, matched_attributes=matched
    )


def compare(left: Fingerprint, right: Fingerprint) -> CompareResponse:
    """Weighted share of attributes present on either side that are equal on both; 0.0 if none present."""
    matched: list[str] = []
    differing: list[str] = []
    left_values, right_values = left.__dict__, right.__dict__
    for name in _ATTRIBUTE_NAMES:
        a, b = left_values[name], right_values[name]
        if not (_is_present(a) or _is_present(b)):
            continue
        (matched if a == b else differing).append(name)
    total = sum(ATTRIBUTE_WEIGHTS[name] for name in matched + differing)
    similarity = round(sum(ATTRIBUTE_WEIGHTS[name] for name in matched) / total, 4) if total else 0.0
    return CompareResponse(
        similarity=similarity,
        same_visitor=similarity >= SAME_VISITOR_THRESHOLD,
        matched_attributes=matched,
        differing_attributes=differing,
    )


def _is_present(value: object) -> bool:
    return value is not None and value != [] and value != ""
