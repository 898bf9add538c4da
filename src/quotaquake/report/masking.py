"""Mask API keys in anything the report shows: ``qq_`` keys of the embedded registry, and any value
following an api-key header or field name (Kong ``apikey``, ``x-api-key``, ``key=``). The gate's metric
names (``qq_limiter_decision_ms``, ...) look like keys and are left alone."""

from __future__ import annotations

import re

from quotaquake.gate.expressions import METRICS

_METRIC_SUFFIXES = "|".join(
    sorted((re.escape(name.removeprefix("qq_")) for name in METRICS if name.startswith("qq_")), key=len, reverse=True)
)
_QQ_KEY = re.compile(rf"\bqq_(?!(?:{_METRIC_SUFFIXES})(?![A-Za-z0-9_\-]))[A-Za-z0-9_\-]{{8,}}")
_KEY_CONTEXT = re.compile(
    r"(?i)\b((?:x-)?api[-_]?key|key|authorization)(\"?\s*[:=]\s*\"?|\s+)(?!\*)([A-Za-z0-9_\-\.~+/]{6,})"
)


def mask_secrets(text: str) -> str:
    """``text`` with every API key reduced to its first 4 characters and ``****``."""
    masked = _QQ_KEY.sub(lambda m: m.group(0)[:4] + "****", text)
    return _KEY_CONTEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)[:4]}****", masked)
