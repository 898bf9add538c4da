"""Where the chaos probes record the requests they send through the gateway (the probe ledger).

Probe traffic is not in the load history, but the gateway and Prometheus count it, so verification reads
the ledger to tell probe requests from lost ones (``RunFolder.read_probe_requests``). The experiment
names the file through the configuration entry ``quotaquake_probe_ledger`` (env
``QUOTAQUAKE_PROBE_LEDGER``, set by ``quotaquake run`` to ``RunFolder.probe_ledger``). A standalone
``chaos run`` writes ``probe-requests.jsonl`` in its working directory, beside its ``journal.json``, where
``quotaquake verify --journal`` finds it; an empty value records nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from quotaquake.runfolder import append_probe_requests
from quotaquake.runfolder.models import ProbeRequest

LEDGER_CONFIG_KEY = "quotaquake_probe_ledger"
LEDGER_ENV_VAR = "QUOTAQUAKE_PROBE_LEDGER"


def ledger_path(configuration: Mapping[str, object] | None) -> Path | None:
    value = (configuration or {}).get(LEDGER_CONFIG_KEY)
    return Path(str(value)) if value else None


def record(configuration: Mapping[str, object] | None, requests: Iterable[ProbeRequest]) -> None:
    """Append ``requests`` to the ledger the experiment names; no-op without one."""
    append_probe_requests(ledger_path(configuration), requests)
