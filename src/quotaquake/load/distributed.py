"""One history from many Locust processes: every worker's rows end up in the master's run folder.

Locust master/worker runs (``--processes N`` on one machine, ``--master``/``--worker`` across machines) are
joined by a few custom messages over Locust's own connection (zmq, one TCP connection per worker):

* join: the worker sends ``qq_hello`` (its history id, host, pid) until the master answers ``qq_welcome``
  with its *token*; then it pings the master ``PINGS`` times (``qq_ping`` -> ``qq_pong``, NTP-style) and
  keeps the sample with the lowest round trip as its clock offset (``estimate_clock``).
* where the parts go, decided per part and never guessed: the master writes its token into its run folder
  (``RunFolder.master_token_file``). A worker that finds that token in *its* idea of the run folder shares
  the folder (same machine, or a shared file system) and writes its Parquet parts there itself, as a
  single process does (the fast path: nothing crosses the connection). Otherwise it ships each part as
  an Arrow IPC stream (``qq_rows``); the master writes it as ``part-<worker>-<seq>.parquet`` and
  acknowledges it (``qq_rows_ack``). Arrow IPC because it measured cheapest end to end
  (docs/research/locust-2.47.md section 2: ~0.3 us/row on the worker, ~0.01 us/row to read on the master,
  against ~0.6 us/row for msgpack + Table building; Parquet is written once, by the master).
* backpressure, bounded memory: a worker keeps at most ``MAX_IN_FLIGHT_BYTES`` of unacknowledged parts
  on the wire. A part that would exceed it, or whose send fails, is written into the worker's own run
  folder instead (``spill_dir``) and counted as ``rows_elsewhere``: the load is never slowed and no row is
  dropped silently, but the master's history is then incomplete and says where the rest is.
* leave: from ``test_stop`` (after its users stopped, before Locust's final stats report) the worker
  flushes its last rows and sends ``qq_bye`` with its counts. Locust's master listens for only 0.5 s after
  it sends ``quit`` (docs/research/locust-2.47.md section 1), too short for a busy worker to stop its users
  and send its last part, so the master's own ``test_stop`` (which comes before ``quit`` is sent) first
  *drains*: it asks every live worker to stop (``qq_history_drain``) and waits, up to ``--stop-timeout`` +
  ``DRAIN_SLACK_S``, until each has answered ``qq_history_drained`` after its bye. Locust's final stats
  report then comes from stopped workers at once.
* the master keeps a ``WorkerRecord`` per worker: join and leave times, Locust's ``missing`` state (polled
  every second: a killed or hung worker stops its heartbeat), rows received or reported, the final report,
  the clock estimate. It adds them to ``engine.json`` when it quits; ``verify``'s completeness check
  treats a missing worker, one without a final report, or rows not in the folder, as an incomplete run.

Clocks: rows carry the worker's wall-clock times. When a worker's measured offset exceeds half the round
trip (so the clocks provably differ), the worker shifts its rows' ``intended_ns``/``sent_ns`` by it before
writing or shipping; otherwise it leaves them. Either way ``clock_uncertainty_ms`` says how far its times
may still be from the master's: half the round trip when corrected, ``|offset| + rtt/2`` when not.
Checks comparing times across workers (the quota replay, fault windows) can widen their tolerance by the
largest of them; on one machine it is well under a millisecond.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import pyarrow as pa
import pyarrow.compute as pc

from quotaquake.load.recorder import HistoryRecorder
from quotaquake.load.swarm import swarm_folder
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import SCHEMA, write_part
from quotaquake.runfolder.models import Delivery, WorkerRecord

if TYPE_CHECKING:  # Locust is imported where it runs: importing it monkey-patches the process (gevent)
    from locust.env import Environment

log = logging.getLogger(__name__)

HELLO, WELCOME, PING, PONG = "qq_hello", "qq_welcome", "qq_ping", "qq_pong"
ROWS, ROWS_ACK, BYE = "qq_rows", "qq_rows_ack", "qq_bye"
DRAIN, DRAINED = "qq_history_drain", "qq_history_drained"
DRAIN_SLACK_S = 5.0
"""Beyond ``--stop-timeout``, how long the master waits at test stop for every live worker's last rows."""
PINGS = 5
PING_TIMEOUT_S = 1.0
HELLO_INTERVAL_S = 1.0
HELLO_ATTEMPTS = 30
POLL_S = 1.0
STATE_MISSING = "missing"  # locust.runners.STATE_MISSING
MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
"""Unacknowledged shipped bytes one worker may have on the wire (~0.15 KB/row: ~450K rows)."""


# -- clocks ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClockSample:
    """One ping: worker clock at send (``t0_ns``) and receipt (``t1_ns``), master clock in between."""

    t0_ns: int
    master_ns: int
    t1_ns: int

    @property
    def rtt_ns(self) -> int:
        return self.t1_ns - self.t0_ns

    @property
    def offset_ns(self) -> int:
        """Master clock minus worker clock, assuming the master read its clock half way (NTP)."""
        return self.master_ns - (self.t0_ns + self.t1_ns) // 2


@dataclass(frozen=True)
class ClockEstimate:
    """The offset to apply to a worker's times (``correction_ns``, 0 when not significant) and how far
    the times may then still be from the master's clock (``uncertainty_ns``)."""

    offset_ns: int
    rtt_ns: int
    correction_ns: int
    uncertainty_ns: int


def estimate_clock(samples: list[ClockSample]) -> ClockEstimate | None:
    """The lowest-round-trip sample decides (``None`` without samples).

    The true offset lies within ``offset ± rtt/2`` of the estimate. If ``|offset| > rtt/2`` the clocks
    provably differ and the correction is applied (uncertainty ``rtt/2``); otherwise no correction, and the
    uncertainty is ``|offset| + rtt/2`` (on one machine the true offset is 0, so this never corrects there).
    """
    if not samples:
        return None
    best = min(samples, key=lambda s: s.rtt_ns)
    half = best.rtt_ns // 2 + best.rtt_ns % 2
    if abs(best.offset_ns) > half:
        return ClockEstimate(best.offset_ns, best.rtt_ns, best.offset_ns, half)
    return ClockEstimate(best.offset_ns, best.rtt_ns, 0, abs(best.offset_ns) + half)


def shift_times(table: pa.Table, correction_ns: int) -> pa.Table:
    """``table`` with ``intended_ns`` and ``sent_ns`` moved by ``correction_ns`` (the master's clock)."""
    if correction_ns == 0:
        return table
    for name in ("intended_ns", "sent_ns"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pc.add(table.column(name), pa.scalar(correction_ns, pa.int64())))
    return table


# -- Arrow IPC ---------------------------------------------------------------------------------------------
def to_ipc(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream (what a worker ships)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def from_ipc(data: bytes) -> pa.Table:
    """A shipped part back as a table; ``ValueError`` when it is not a history part of ``SCHEMA``."""
    try:
        table = pa.ipc.open_stream(data).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not an Arrow IPC stream ({exc})") from None
    if not table.schema.equals(SCHEMA):
        raise ValueError(f"schema differs from the history schema: {table.schema.names}")
    return table


def _now() -> datetime:
    return datetime.now(UTC)


def _run_folder(environment: Environment) -> RunFolder:
    return swarm_folder(environment.parsed_options)  # the current swarm's folder (``quotaquake.load.swarm``)


# -- worker side ---------------------------------------------------------------------------------------------
@dataclass
class WorkerLink:
    """A worker's side: joins the master, measures the clock, writes or ships parts (``PartWriter``)."""

    runner: Any  # WorkerRunner (typed loosely: tests drive it with a stand-in)
    folder: Callable[[], RunFolder]
    worker: str
    token: str | None = None
    samples: list[ClockSample] = field(default_factory=list)
    clock: ClockEstimate | None = None
    in_flight: dict[str, int] = field(default_factory=dict)  # part name -> bytes not yet acknowledged
    rows_shared: int = 0
    rows_shipped: int = 0
    rows_elsewhere: int = 0
    spill_dir: str | None = None
    max_in_flight_bytes: int = MAX_IN_FLIGHT_BYTES
    _pong: gevent.event.AsyncResult | None = None

    def register(self) -> None:
        self.runner.register_message(WELCOME, self.on_welcome)
        self.runner.register_message(PONG, self.on_pong)
        self.runner.register_message(ROWS_ACK, self.on_ack)

    def hello(self) -> dict[str, Any]:
        return {"worker": self.worker, "host": socket.gethostname(), "pid": os.getpid()}

    # messages from the master (Locust calls them as listener(environment=..., msg=...))
    def on_welcome(self, msg: Any, **_: Any) -> None:
        self.token = str(msg.data["token"])

    def on_pong(self, msg: Any, **_: Any) -> None:
        if self._pong is not None:
            self._pong.set(ClockSample(int(msg.data["t0_ns"]), int(msg.data["master_ns"]), time.time_ns()))

    def on_ack(self, msg: Any, **_: Any) -> None:
        self.in_flight.pop(str(msg.data["name"]), None)

    def join(self) -> None:
        """Greet the master until it answers, then measure the clock (runs in its own greenlet)."""
        for _ in range(HELLO_ATTEMPTS):
            self.runner.send_message(HELLO, self.hello())
            deadline = time.monotonic() + HELLO_INTERVAL_S
            while self.token is None and time.monotonic() < deadline:
                gevent.sleep(0.01)  # poll for the welcome
            if self.token is not None:
                break
        else:
            log.warning("history: the master never answered %s; parts stay in this worker's folder", HELLO)
            return
        for _ in range(PINGS):
            self._pong = gevent.event.AsyncResult()
            self.runner.send_message(PING, {"t0_ns": time.time_ns()})
            sample = self._pong.get(timeout=PING_TIMEOUT_S, block=True) if self._pong else None
            if sample is not None:
                self.samples.append(sample)
            gevent.sleep(0.02)  # spread the pings a little
        self._pong = None
        self.clock = estimate_clock(self.samples)

    def shares_folder(self, folder: RunFolder) -> bool:
        """True when this worker's run folder holds the master's token: the master reads what we write there."""
        try:
            return self.token is not None and folder.master_token_file.read_text(encoding="utf-8") == self.token
        except OSError:
            return False

    def write(self, name: str, table: pa.Table) -> None:
        """``PartWriter``: into the shared folder, shipped to the master, or (no room, no master) spilled."""
        table = shift_times(table, self.clock.correction_ns if self.clock else 0)
        folder = self.folder()
        if self.shares_folder(folder):
            write_part(folder.history_dir, name, table)
            self.rows_shared += table.num_rows
            return
        data = to_ipc(table) if self.token is not None else b""
        if data and sum(self.in_flight.values()) + len(data) <= self.max_in_flight_bytes:
            self.in_flight[name] = len(data)  # before sending: the acknowledgement may come at once
            try:
                self.runner.send_message(ROWS, {"name": name, "rows": table.num_rows, "ipc": data})
            except Exception:
                self.in_flight.pop(name, None)
                log.exception("history: shipping %s failed; kept in this worker's folder", name)
            else:
                self.rows_shipped += table.num_rows
                return
        write_part(folder.history_dir, name, table)
        self.rows_elsewhere += table.num_rows
        self.spill_dir = str(folder.history_dir.resolve())

    def bye(self, recorder: HistoryRecorder) -> dict[str, Any]:
        clock = self.clock
        return {
            **self.hello(),
            "requests": recorder.rows_recorded,
            "rows_shared": self.rows_shared,
            "rows_elsewhere": self.rows_elsewhere + recorder.write_errors,
            "spill_dir": self.spill_dir,
            "clock": None
            if clock is None
            else [clock.offset_ns, clock.rtt_ns, clock.correction_ns, clock.uncertainty_ns],
        }


def install_worker(environment: Environment, recorder: HistoryRecorder) -> WorkerLink:
    """Worker process: join the master, route the recorder's parts, say goodbye at each test stop."""
    runner: Any = environment.runner
    link = WorkerLink(runner=runner, folder=lambda: _run_folder(environment), worker=recorder.worker)
    link.register()
    recorder.writer = link

    def on_test_stop(**_: Any) -> None:  # users have stopped; Locust's final stats report follows
        try:
            recorder.flush()
        except Exception:
            log.exception("history: the last part could not be written")
        runner.send_message(BYE, link.bye(recorder))

    def on_drain(**_: Any) -> None:  # concurrent: stopping waits for users; the receive loop must go on
        runner.stop()  # fires test_stop (last part, bye) unless already stopped
        runner.send_message(DRAINED, {})

    events: Any = environment.events
    events.test_stop.add_listener(on_test_stop)
    runner.register_message(DRAIN, on_drain, concurrent=True)
    gevent.spawn(link.join)
    return link


# -- master side ---------------------------------------------------------------------------------------------
@dataclass
class WorkerLedger:
    """The master's side: the token, the workers' records, the parts shipped to it."""

    folder: Callable[[], RunFolder]
    send: Callable[[str, dict[str, Any], str], None]  # (type, data, client id)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    records: dict[str, WorkerRecord] = field(default_factory=dict)
    shipped_rows: dict[str, int] = field(default_factory=dict)  # client id -> rows of parts written here
    shared_rows: dict[str, int] = field(default_factory=dict)  # client id -> rows it wrote here itself
    drained: set[str] = field(default_factory=set)  # client ids that answered the current drain
    rejected_parts: int = 0

    def record(self, client_id: str) -> WorkerRecord:
        return self.records.setdefault(client_id, WorkerRecord(id=client_id))

    def write_token(self) -> None:
        """Mark the run folder as this master's (workers that see it write their parts here)."""
        folder = self.folder()
        folder.path.mkdir(parents=True, exist_ok=True)
        tmp = folder.master_token_file.with_name(folder.master_token_file.name + ".tmp")
        tmp.write_text(self.token, encoding="utf-8")
        os.replace(tmp, folder.master_token_file)

    def on_connect(self, client_id: str, **_: Any) -> None:
        record = self.record(client_id)
        record.joined_at = record.joined_at or _now()

    def on_hello(self, msg: Any, **_: Any) -> None:
        record = self.record(msg.node_id)
        record.joined_at = record.joined_at or _now()
        record.worker, record.host, record.pid = msg.data["worker"], msg.data["host"], int(msg.data["pid"])
        self.send(WELCOME, {"token": self.token, "host": socket.gethostname()}, msg.node_id)

    def on_ping(self, msg: Any, **_: Any) -> None:
        self.send(PONG, {"t0_ns": msg.data["t0_ns"], "master_ns": time.time_ns()}, msg.node_id)

    def on_rows(self, msg: Any, **_: Any) -> None:
        """A shipped part: written as sent (the name carries the worker and its sequence), then acknowledged."""
        name = str(msg.data["name"])
        try:
            table = from_ipc(msg.data["ipc"])
            if not name.startswith("part-") or "/" in name or not name.endswith(".parquet"):
                raise ValueError(f"bad part name {name!r}")
        except ValueError as exc:
            self.rejected_parts += 1
            log.error("history: part from worker %s rejected: %s", msg.node_id, exc)
            return
        write_part(self.folder().history_dir, name, table)
        record = self.record(msg.node_id)
        self.shipped_rows[msg.node_id] = self.shipped_rows.get(msg.node_id, 0) + table.num_rows
        record.rows = self.shipped_rows[msg.node_id] + self.shared_rows.get(msg.node_id, 0)
        record.delivery = Delivery.SHIPPED
        self.send(ROWS_ACK, {"name": name}, msg.node_id)

    def on_bye(self, msg: Any, **_: Any) -> None:
        data: dict[str, Any] = msg.data
        record = self.record(msg.node_id)
        record.worker, record.host, record.pid = data["worker"], data["host"], int(data["pid"])
        record.requests = int(data["requests"])
        self.shared_rows[msg.node_id] = int(data["rows_shared"])  # cumulative: the latest report counts
        record.rows = self.shipped_rows.get(msg.node_id, 0) + self.shared_rows[msg.node_id]
        if data["rows_shared"] and record.delivery is Delivery.NONE:
            record.delivery = Delivery.SHARED_FOLDER
        record.rows_elsewhere = int(data["rows_elsewhere"])
        record.spill_dir = data["spill_dir"]
        record.final_report = True
        if data["clock"] is not None:
            offset, _rtt, correction, uncertainty = (int(v) for v in data["clock"])
            record.clock_offset_ms, record.clock_uncertainty_ms = offset / 1e6, uncertainty / 1e6
            record.clock_corrected = correction != 0

    def on_drained(self, msg: Any, **_: Any) -> None:
        self.drained.add(msg.node_id)

    def drain(self, runner: Any, timeout_s: float) -> set[str]:
        """Ask every live worker to stop and send its last rows; wait for all of them (or ``timeout_s``).
        Returns the workers that did not answer."""
        live = {client.id for client in runner.clients.all if client.state != STATE_MISSING}
        if not live:
            return set()
        self.drained.clear()
        runner.send_message(DRAIN, {})
        deadline = time.monotonic() + timeout_s
        while live - self.drained and time.monotonic() < deadline:
            gevent.sleep(0.05)  # the receive loop runs meanwhile
        late = live - self.drained
        if late:
            log.warning("history: %d worker(s) did not send their last rows within %.0f s", len(late), timeout_s)
        return late

    def poll(self, clients: Any) -> None:
        """Note workers Locust marks missing (heartbeats stopped) and workers that left."""
        for client_id, record in self.records.items():
            client = clients.get(client_id)
            if client is not None and client.state == STATE_MISSING and not record.missing:
                record.missing = True
                record.left_at = record.left_at or _now()
                log.warning("history: worker %s (%s) went missing: its rows since its last part are lost",
                            record.worker or client_id, record.host)  # fmt: skip
            elif client is None and record.left_at is None:
                record.left_at = _now()

    def workers(self) -> list[WorkerRecord]:
        return list(self.records.values())


def install_master(environment: Environment) -> WorkerLedger:
    """Master process: token, handlers, the missing-worker poll, and ``engine.json``'s workers at quit."""
    runner: Any = environment.runner
    events: Any = environment.events
    ledger = WorkerLedger(
        folder=lambda: _run_folder(environment),
        send=lambda kind, data, client: runner.send_message(kind, data, client_id=client),
    )
    ledger.write_token()
    for kind, listener in (
        (HELLO, ledger.on_hello),
        (PING, ledger.on_ping),
        (ROWS, ledger.on_rows),
        (BYE, ledger.on_bye),
        (DRAINED, ledger.on_drained),
    ):
        runner.register_message(kind, listener)
    events.worker_connect.add_listener(ledger.on_connect)
    events.test_start.add_listener(lambda **_: ledger.write_token())  # the folder may be new (per swarm)
    stop_timeout = float(getattr(environment, "stop_timeout", None) or 0.0)
    events.test_stop.add_listener(lambda **_: ledger.drain(runner, stop_timeout + DRAIN_SLACK_S))

    def poll_forever() -> None:
        while True:
            gevent.sleep(POLL_S)
            ledger.poll(runner.clients)

    poller = gevent.spawn(poll_forever)

    def on_quit(**_: Any) -> None:  # after Locust's own quit listener wrote engine.json's totals
        poller.kill(block=False)
        ledger.poll(runner.clients)
        folder = ledger.folder()
        record = folder.read_engine()
        if record is not None:
            folder.write_engine(record.model_copy(update={"distributed": True, "workers": ledger.workers()}))

    events.quit.add_listener(on_quit)
    return ledger


def install_distribution(environment: Environment, recorder: HistoryRecorder | None) -> None:
    """Register the master's or the worker's side (a single local runner needs neither)."""
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(environment.runner, MasterRunner):
        install_master(environment)
    elif isinstance(environment.runner, WorkerRunner) and recorder is not None:
        install_worker(environment, recorder)
