"""Many generators, one history: clock estimate, where parts go (shared folder, shipped, spilled), the
master's ledger of workers, with Locust's messaging replaced by direct calls (no sockets)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from quotaquake.load.distributed import (
    BYE,
    DRAIN,
    ROWS,
    ROWS_ACK,
    WELCOME,
    ClockSample,
    WorkerLedger,
    WorkerLink,
    estimate_clock,
    from_ipc,
    shift_times,
    to_ipc,
)
from quotaquake.load.recorder import CONTEXT_KEY, HistoryRecorder, RequestContext
from quotaquake.runfolder import RunFolder
from quotaquake.runfolder.history import SCHEMA, read_history
from quotaquake.runfolder.models import Delivery


class Wire:
    """Locust's messaging between one worker and the master, as direct calls (in order, like zmq)."""

    def __init__(self, ledger: WorkerLedger | None = None, client_id: str = "client-1") -> None:
        self.ledger, self.client_id = ledger, client_id
        self.sent: list[tuple[str, Any]] = []
        self.link: WorkerLink | None = None
        self.fail = False

    # worker -> master (WorkerRunner.send_message)
    def send_message(self, kind: str, data: Any) -> None:
        if self.fail:
            raise ConnectionError("master gone")
        self.sent.append((kind, data))
        if self.ledger is not None:
            handler = {ROWS: self.ledger.on_rows, BYE: self.ledger.on_bye}.get(kind)
            if handler is not None:
                handler(msg=SimpleNamespace(data=data, node_id=self.client_id))

    # master -> worker (MasterRunner.send_message)
    def to_worker(self, kind: str, data: dict[str, Any], client_id: str) -> None:
        assert client_id == self.client_id and self.link is not None
        msg = SimpleNamespace(data=data, node_id="master")
        if kind == WELCOME:
            self.link.on_welcome(msg=msg)
        elif kind == ROWS_ACK:
            self.link.on_ack(msg=msg)

    def register_message(self, kind: str, listener: Any) -> None:
        del kind, listener


def recorder_with_rows(link: WorkerLink, rows: int) -> HistoryRecorder:
    recorder = HistoryRecorder(writer=link, worker="host-1")
    add_rows(recorder, rows)
    return recorder


def add_rows(recorder: HistoryRecorder, rows: int) -> None:
    for n in range(rows):
        recorder.on_request(
            "GET", "/calibrate", 1.0, 2, response=SimpleNamespace(status_code=200, headers={}),
            context={CONTEXT_KEY: RequestContext(1_000 + n, 2_000 + n, "free-1", "free", "/calibrate", 1.0)},
        )  # fmt: skip


def test_clock_estimate_uses_the_lowest_round_trip_and_corrects_only_a_provable_offset() -> None:
    # worker clock 5 ms behind the master; round trips 4 ms and 1 ms: the 1 ms sample decides
    slow = ClockSample(t0_ns=0, master_ns=5_000_000 + 3_000_000, t1_ns=4_000_000)
    fast = ClockSample(t0_ns=10_000_000, master_ns=15_500_000, t1_ns=11_000_000)
    estimate = estimate_clock([slow, fast])
    assert estimate is not None
    assert (estimate.offset_ns, estimate.rtt_ns) == (5_000_000, 1_000_000)
    assert estimate.correction_ns == 5_000_000 and estimate.uncertainty_ns == 500_000  # |5 ms| > 0.5 ms
    # same machine: offset 0.1 ms within half the 0.4 ms round trip: no correction, uncertainty 0.1 + 0.2 ms
    same = estimate_clock([ClockSample(0, 300_000, 400_000)])
    assert same is not None and same.correction_ns == 0 and same.uncertainty_ns == 300_000
    assert estimate_clock([]) is None


def test_shift_times_moves_both_send_times_and_nothing_else() -> None:
    table = pa.table(
        {"intended_ns": pa.array([1, 2], pa.int64()), "sent_ns": pa.array([3, 4], pa.int64()), "x": [5, 6]}
    )
    shifted = shift_times(table, 10)
    assert shifted.column("intended_ns").to_pylist() == [11, 12]
    assert shifted.column("sent_ns").to_pylist() == [13, 14]
    assert shifted.column("x").to_pylist() == [5, 6]
    assert shift_times(table, 0) is table


def test_arrow_ipc_round_trip_and_foreign_payloads_rejected() -> None:
    table = SCHEMA.empty_table()
    assert from_ipc(to_ipc(table)).equals(table)
    with pytest.raises(ValueError, match="not an Arrow IPC stream"):
        from_ipc(b"garbage")
    with pytest.raises(ValueError, match="schema differs"):
        from_ipc(to_ipc(pa.table({"a": [1]})))


def connected(tmp_path: Path, *, share: bool) -> tuple[WorkerLedger, WorkerLink, Wire]:
    """A master whose run folder is ``master/run`` and a worker whose run folder is the same (share) or not."""
    master_folder = RunFolder(tmp_path / "master" / "run")
    worker_folder = master_folder if share else RunFolder(tmp_path / "worker" / "run")
    wire = Wire()
    ledger = WorkerLedger(folder=lambda: master_folder, send=wire.to_worker)
    wire.ledger = ledger
    ledger.write_token()
    link = WorkerLink(runner=wire, folder=lambda: worker_folder, worker="host-1")
    wire.link = link
    ledger.on_hello(msg=SimpleNamespace(data=link.hello(), node_id=wire.client_id))  # -> welcome
    return ledger, link, wire


def test_a_worker_that_finds_the_masters_token_writes_into_the_shared_folder(tmp_path: Path) -> None:
    ledger, link, wire = connected(tmp_path, share=True)
    recorder = recorder_with_rows(link, 7)
    recorder.flush()
    wire.send_message(BYE, link.bye(recorder))
    assert not [kind for kind, _ in wire.sent if kind == ROWS]  # nothing crossed the wire
    assert len(read_history(ledger.folder().history_dir)) == 7
    (record,) = ledger.workers()
    assert (record.delivery, record.rows, record.requests, record.final_report) == (Delivery.SHARED_FOLDER, 7, 7, True)


def test_a_worker_without_the_token_ships_its_parts_and_the_master_writes_them(tmp_path: Path) -> None:
    ledger, link, wire = connected(tmp_path, share=False)
    recorder = recorder_with_rows(link, 5)
    recorder.flush()
    for n in range(3):
        recorder.on_request("GET", f"/x?{n}", 1.0, 2, response=None)
    recorder.flush()
    wire.send_message(BYE, link.bye(recorder))
    history = read_history(ledger.folder().history_dir)
    assert len(history) == 8 and set(history["worker"]) == {"host-1"}
    assert not (tmp_path / "worker").exists()  # nothing written on the worker's side
    assert link.in_flight == {}  # every part acknowledged
    (record,) = ledger.workers()
    assert (record.delivery, record.rows, record.requests, record.rows_elsewhere) == (Delivery.SHIPPED, 8, 8, 0)


def test_no_room_on_the_wire_or_a_failed_send_spills_to_the_workers_folder_and_is_counted(tmp_path: Path) -> None:
    ledger, link, wire = connected(tmp_path, share=False)
    link.max_in_flight_bytes = 1  # the window is full: nothing may be shipped
    recorder = recorder_with_rows(link, 4)
    recorder.flush()
    link.max_in_flight_bytes = 10**9
    wire.fail = True  # the master is gone
    add_rows(recorder, 2)
    recorder.flush()
    assert link.rows_elsewhere == 6 and link.rows_shipped == 0
    assert len(read_history(tmp_path / "worker" / "run" / "history")) == 6
    wire.fail = False
    wire.send_message(BYE, link.bye(recorder))
    (record,) = ledger.workers()
    assert record.rows == 0 and record.rows_elsewhere == 6
    assert record.spill_dir == str((tmp_path / "worker" / "run" / "history").resolve())


def test_a_part_that_is_not_ours_is_rejected_not_written(tmp_path: Path) -> None:
    ledger, _, wire = connected(tmp_path, share=False)
    bad = {"name": "../evil.parquet", "rows": 0, "ipc": to_ipc(SCHEMA.empty_table())}
    ledger.on_rows(msg=SimpleNamespace(data=bad, node_id=wire.client_id))
    ledger.on_rows(msg=SimpleNamespace(data={"name": "part-x-1.parquet", "ipc": b"x"}, node_id=wire.client_id))
    assert ledger.rejected_parts == 2
    assert not ledger.folder().history_dir.exists()


def test_the_ledger_notes_workers_that_go_missing_or_leave(tmp_path: Path) -> None:
    ledger, _, wire = connected(tmp_path, share=True)
    ledger.on_connect("client-2")
    ledger.poll({wire.client_id: SimpleNamespace(state="running"), "client-2": SimpleNamespace(state="running")})
    assert all(not r.missing and r.left_at is None for r in ledger.workers())
    ledger.poll({wire.client_id: SimpleNamespace(state="missing")})  # client-2 quit: Locust deleted it
    first, second = ledger.records[wire.client_id], ledger.records["client-2"]
    assert first.missing and first.left_at is not None and not first.final_report
    assert not second.missing and second.left_at is not None


class DrainRunner:
    """A master runner whose workers answer the drain (or not)."""

    def __init__(self, ledger: WorkerLedger, clients: dict[str, str], answering: set[str]) -> None:
        self.ledger, self.answering = ledger, answering
        self.clients = SimpleNamespace(all=[SimpleNamespace(id=c, state=s) for c, s in clients.items()])
        self.sent: list[str] = []

    def send_message(self, kind: str, data: Any) -> None:
        del data
        self.sent.append(kind)
        for client in self.answering:
            self.ledger.on_drained(msg=SimpleNamespace(node_id=client))


def test_drain_waits_for_every_live_worker_and_names_the_ones_that_never_answer(tmp_path: Path) -> None:
    ledger = WorkerLedger(folder=lambda: RunFolder(tmp_path), send=lambda *_: None)
    runner = DrainRunner(ledger, {"a": "running", "b": "running", "dead": "missing"}, answering={"a", "b"})
    assert ledger.drain(runner, timeout_s=5) == set()  # the missing worker is not waited for
    assert runner.sent == [DRAIN]
    silent = DrainRunner(ledger, {"a": "running", "b": "running"}, answering={"a"})
    started = time.monotonic()
    assert ledger.drain(silent, timeout_s=0.2) == {"b"}
    assert time.monotonic() - started < 2
