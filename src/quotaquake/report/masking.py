"""Mask API keys in anything the report shows: ``qq_`` keys of the embedded registry, and any value
following an api-key header or field name (Kong ``apikey``, ``x-api-key``, ``key=``)."""

from __future__ import annotations

import re

_QQ_KEY = re.compile(r"\bqq_[A-Za-z0-9_\-]{8,}")
_KEY_CONTEXT = re.compile(
    r"(?i)\b((?:x-)?api[-_]?key|key|authorization)(\"?\s*[:=]\s*\"?|\s+)(?!\*)([A-Za-z0-9_\-\.~+/]{6,})"
)


def mask_secrets(text: str) -> str:
    """``text`` with every API key reduced to its first 4 characters and ``****``."""
    masked = _QQ_KEY.sub(lambda m: m.group(0)[:4] + "****", text)
    return _KEY_CONTEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)[:4]}****", masked)
