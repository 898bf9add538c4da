"""The generator's own account: process reports summed by the master, missing workers named; stop helpers."""

from __future__ import annotations

import argparse

import pytest

from quotaquake.load.generator import GeneratorReports
from quotaquake.load.options import ScenarioDefaults, ScenarioOptions, add_options
from quotaquake.load.stopping import default_stop_timeout_s, drain_timeout_s, note_stop_reason, take_stop_reason
from quotaquake.runfolder.models import EngineRecord, GeneratorProcess


def options(*argv: str) -> ScenarioOptions:
    parser = argparse.ArgumentParser()
    add_options(parser, ScenarioDefaults())
    return ScenarioOptions.from_namespace(parser.parse_args(list(argv)))


def report(worker: str, role: str = "worker", **counts: float) -> GeneratorProcess:
    return GeneratorProcess(worker=worker, role=role, cpu_s=1.5, wall_s=10.0, **counts)  # type: ignore[arg-type]


def test_reports_of_the_swarm_add_up_and_missing_workers_are_named() -> None:
    reports = GeneratorReports()
    reports.start(2)
    reports.expected |= {"a", "b", "c"}
    reports.add("a", 2, report("h-1", scheduled=100, sent=90, slot_waits=3, slot_wait_s=0.5, slot_wait_max_s=0.3))
    reports.add("b", 2, report("h-2", scheduled=50, sent=50, in_flight_peak=4, slot_wait_max_s=0.1))
    reports.add("c", 1, report("h-3", scheduled=999, sent=999))  # a late report of swarm 1: not this swarm's
    record = reports.record(options("--qq-rate", "500", "--qq-max-in-flight", "100"), report("h-0", role="master"))
    assert (record.max_in_flight, record.max_in_flight_per_user, record.peak_users) == (100, 4, 25)
    assert record.missing_reports == ["c"] and not record.complete
    assert (record.scheduled, record.sent, record.unsent) == (150, 140, 10)
    assert (record.slot_waits, record.slot_wait_s, record.slot_wait_max_s) == (3, 0.5, 0.3)
    assert record.in_flight_peak == 4 and record.cpu_s == pytest.approx(4.5)
    assert [p.role for p in record.processes] == ["master", "worker", "worker"]


def test_totals_are_written_for_readers_of_the_json_and_read_back() -> None:
    reports = GeneratorReports()
    reports.start(1)
    record = reports.record(options(), report("h-0", role="local", scheduled=10, sent=10))
    text = EngineRecord(generator=record).model_dump_json()
    assert '"sent":10' in text and '"complete":true' in text
    assert EngineRecord.model_validate_json(text).generator == record


def test_stop_timeouts() -> None:
    assert default_stop_timeout_s(10.0) == 11.0
    assert default_stop_timeout_s(2.5) == 4.0  # ceil(2.5) + 1: every request ends before its user is stopped
    assert drain_timeout_s(11.0) == 27.0


def test_stop_reasons_are_per_swarm() -> None:
    class Environment:
        pass

    environment = Environment()
    note_stop_reason(environment, "signal SIGTERM")
    note_stop_reason(environment, "completed")  # the first reason wins
    assert take_stop_reason(environment) == "signal SIGTERM"
    assert take_stop_reason(environment) == "stopped"  # forgotten: the next swarm starts clean
