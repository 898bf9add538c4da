"""Service URLs that carry credentials: build them, and mask them wherever they are shown."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"


def with_password(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` in front of its host (``redis://:pw@host:port/0`` for an empty user)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def masked(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (for tables, logs and reports); '' for ``None``."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
