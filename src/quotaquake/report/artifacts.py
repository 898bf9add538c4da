"""Links to the files of the run folder that exist, relative to ``index.html`` (paths from ``RunFolder``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import part_paths


@dataclass(frozen=True)
class Artifact:
    label: str
    href: str  # relative to the run folder (where index.html lives); folders end with "/"
    size: str  # human-readable: "12.3 kB", "4 parts, 1.2 MB"
    what: str


def artifacts(folder: RunFolder) -> list[Artifact]:
    """Every artifact of ``folder`` that exists, in reading order."""
    candidates: list[tuple[str, Path, str]] = [
        ("Locust report", folder.locust_html, "Locust's own HTML report of the load"),
        ("Locust log", folder.locust_log, "Locust's output (master and workers)"),
        ("Locust statistics", folder.locust_stats_csv, "Locust's per-endpoint statistics (CSV)"),
        ("Chaos journal", folder.journal_file, "Chaos Toolkit's journal of the experiment"),
        ("Chaos Toolkit log", folder.chaos_log, "Chaos Toolkit's log"),
        ("Chaos output", folder.chaos_output, "Chaos Toolkit's console output"),
        ("Probe requests", folder.probe_ledger, "requests the experiment's probes sent through the gateway"),
        ("Fault windows", folder.faults_file, "fault windows derived from the journal"),
        ("Verdicts", folder.verdicts_file, "every verdict with its evidence (JSON)"),
        ("JUnit XML", folder.junit_file, "one test case per check, for CI"),
        ("History", folder.history_dir, "the request history (Parquet parts, one row per request)"),
        ("Run record", folder.run_file, "what was asked for and against what"),
        ("Engine record", folder.engine_file, "the load engine's start, end and totals"),
        ("Prometheus snapshot", folder.prometheus_file, "server-side counters over the run window"),
        ("Host samples", folder.host_file, "the machine each second during the load: CPU, pressure, who used it"),
        ("Stack logs", folder.stack_logs_dir, "the service logs of the stack the run started (one file per service)"),
    ]
    found: list[Artifact] = []
    for label, path, what in candidates:
        if path.is_file():
            found.append(Artifact(label, _href(folder, path), human_size(path.stat().st_size), what))
        elif path.is_dir():
            files = part_paths(path) if path == folder.history_dir else sorted(p for p in path.iterdir() if p.is_file())
            noun = ("part" if path == folder.history_dir else "file") + ("" if len(files) == 1 else "s")
            size = sum(p.stat().st_size for p in files)
            found.append(Artifact(label, _href(folder, path) + "/", f"{len(files)} {noun}, {human_size(size)}", what))
    return found


def _href(folder: RunFolder, path: Path) -> str:
    return path.relative_to(folder.path).as_posix()


def human_size(size: int) -> str:
    """Bytes in B, kB, MB or GB (powers of 1000, one decimal above bytes)."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
