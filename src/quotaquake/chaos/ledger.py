"""The probe ledger: every request a chaos probe sends through the gateway, one JSON line each.

Probe traffic is not in the load history, but the gateway and Prometheus count it. Verification reads the
ledger (``read_ledger``) to tell probe requests from lost ones. The experiment names the file through
the configuration entry ``quotaquake_probe_ledger`` (env ``QUOTAQUAKE_PROBE_LEDGER``); when it is empty,
as in a standalone ``chaos run``, nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel

LEDGER_CONFIG_KEY = "quotaquake_probe_ledger"
LEDGER_ENV_VAR = "QUOTAQUAKE_PROBE_LEDGER"
LEDGER_FILE = "probe-requests.jsonl"  # in <run_dir>/chaos/


class ProbeRequest(BaseModel):
    """One request a probe sent through the load balancer (``t``: epoch seconds when it was answered)."""

    t: float
    probe: str
    method: str
    path: str
    status: int | None  # None: no response (timeout, connection error)


def ledger_path(configuration: Mapping[str, object] | None) -> Path | None:
    value = (configuration or {}).get(LEDGER_CONFIG_KEY)
    return Path(str(value)) if value else None


def append(path: Path | None, requests: Iterable[ProbeRequest]) -> None:
    """Append ``requests`` to the ledger at ``path``; no-op when ``path`` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for request in requests:
            out.write(request.model_dump_json() + "\n")


def read_ledger(path: Path) -> list[ProbeRequest]:
    """All probe requests recorded at ``path``; an absent file means none were sent."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ProbeRequest.model_validate(json.loads(line)) for line in lines if line.strip()]
