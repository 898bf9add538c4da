"""``abortOnFail`` for ``quotaquake run``: while Locust runs, judge the abort thresholds every ``EVAL_S``
seconds (``verify.live``) and, once one is proven broken, stop Locust gracefully (SIGTERM to its master,
which stops as at the end of its run time: users finish, reports and history are written). The decision
goes into ``run.json`` (``aborted``) and verification fails that threshold.

With ``--engine k6`` the history exists only after k6 exits, so nothing can be judged during the load:
the thresholds are judged at the end as usual, and the run says so in its notes.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psutil

from quotaquake.context import RunContext
from quotaquake.runfolder.models import AbortRecord, PrometheusSnapshot
from quotaquake.verify.live import LiveJudge
from quotaquake.verify.thresholds import load_thresholds

EVAL_S = 2.0
"""Seconds between two looks: parts arrive every second from each Locust process."""

Snapshot = Callable[[float, float], PrometheusSnapshot]


@dataclass
class Aborter:
    """The watcher of one run: ``record`` is set when it stopped the load."""

    judge: LiveJudge
    stop_load: Callable[[], None]
    snapshot: Snapshot | None = None
    record: AbortRecord | None = None
    started: float = field(default_factory=time.time)
    _stop: threading.Event = field(default_factory=threading.Event)

    def look(self) -> AbortRecord | None:
        """One look: read the new parts, judge, stop the load on a proven violation."""
        self.judge.update()
        elapsed = time.time() - self.started
        needs_limiter = any(t.metric == "qq_limiter_decision_ms" for t in self.judge.thresholds)
        snapshot = self.snapshot(self.started, time.time()) if self.snapshot and needs_limiter else None
        found = self.judge.first_violation(elapsed, snapshot)
        if found is None:
            return None
        self.record = found[1]
        self.stop_load()
        return self.record

    def watch(self) -> None:
        while not self._stop.wait(EVAL_S):
            try:
                if self.look() is not None:
                    return
            except Exception:  # a look that fails never stops a run: the end judges anyway
                continue

    def close(self) -> None:
        self._stop.set()


def stop_locust(context: RunContext) -> Callable[[], None]:
    """SIGTERM to the Locust master of this run: the child process whose command line names the run
    folder (Locust then stops as at the end of its run time)."""
    folder = str(context.folder.path)

    def stop() -> None:
        for child in psutil.Process().children(recursive=False):
            with contextlib.suppress(psutil.Error):
                command = child.cmdline()
                if "locust" in " ".join(command) and folder in command:
                    child.send_signal(signal.SIGTERM)

    return stop


def prometheus_snapshot(context: RunContext) -> Snapshot | None:
    url = context.state.endpoints.prometheus if context.state.endpoints else None
    if url is None:
        return None
    from quotaquake.prometheus import snapshot_prometheus

    return lambda start, end: snapshot_prometheus(url, start, end)


@contextlib.contextmanager
def aborting(context: RunContext) -> Iterator[Aborter | None]:
    """Watch the run's abort thresholds while the block (the load) runs; yields the watcher (``None`` when
    the thresholds file has no abortOnFail, or the engine is k6: noted in the console)."""
    thresholds = load_thresholds(context.request.thresholds)
    chosen = [t for t in thresholds.thresholds if t.abort_on_fail]
    if not chosen:
        yield None
        return
    if context.request.engine == "k6":
        context.console.print("[yellow]abortOnFail: k6 writes the history when it exits; judged at the end only")
        yield None
        return
    looks = max(1, math.ceil(context.request.duration_s / EVAL_S))
    judge = LiveJudge(context.folder, chosen, thresholds.slo.confidence, thresholds.slo.warmup_s, looks)
    aborter = Aborter(judge, stop_locust(context), prometheus_snapshot(context))
    thread = threading.Thread(target=aborter.watch, name="quotaquake-abort", daemon=True)
    thread.start()
    context.console.print(f"abortOnFail: {len(chosen)} threshold(s) judged every {EVAL_S:g} s while the load runs")
    try:
        yield aborter
    finally:
        aborter.close()
        thread.join(timeout=30)
    if aborter.record is not None:
        context.console.print(f"[bold red]aborted after {aborter.record.after_s:.1f} s: {aborter.record.threshold}[/]")
