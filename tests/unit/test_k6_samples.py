"""k6's CSV -> history rows: a hand-written k6 output with a hand-computed history."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from quotaquake.load.k6.plan import K6Plan, build_plan
from quotaquake.load.k6.samples import history_table, read_samples, write_history
from quotaquake.load.options import ScenarioOptions
from quotaquake.load.recorder import HEADER_COLUMNS
from quotaquake.policy import load_policy
from quotaquake.runfolder.history import COLUMNS, read_history
from quotaquake.stack.state import Consumer, Endpoints, StackState

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "stack" / "policy.yaml")
HEADER = (
    "metric_name,timestamp,metric_value,error,error_code,expected_response,method,name,scenario,status,"
    "extra_tags,metadata"
)  # what k6 1.1.0 writes with the plan's systemTags
START_MS = 1_795_000_000_000
ORIGIN = START_MS * 1_000_000 + 200_000  # the executor started 0.2 ms into the ms the script saw
MS = 1_000_000


def plan() -> K6Plan:
    consumers = [Consumer(id=f"{t}-{n}", tier=t, key=f"k-{t}-{n}") for t in ("free", "pro") for n in (1, 2)]
    state = StackState(
        provider="local",
        stack_id="s",
        work_dir="/tmp",
        state_file="/tmp/s.json",
        endpoints=Endpoints(gateway="http://127.0.0.1:1"),
        consumers=consumers,
    )
    options = ScenarioOptions(
        state=Path("/tmp/s.json"),
        out=Path("/tmp/run"),
        rate=100.0,
        user_rate=20.0,
        shape="steady",
        tiers={"free": 1.0, "pro": 1.0, "anonymous": 1.0},
        endpoints={"/identify": 3.0, "/health": 1.0},
        target="api",
        consumers_per_tier=0,
        anon_ips=4,
        key_header="x-api-key",
        timeout_s=10.0,
    )
    return build_plan(options, state, POLICY, 10.0)[0]


def record(iteration: int, status: int, latency_ms: float, error: str = "", headers: str = "~~~~~~") -> str:
    """The script's record: header values in ``HEADER_COLUMNS`` order (the ones not given empty)."""
    values = headers.split("~")
    values += [""] * (len(HEADER_COLUMNS) - len(values))
    return f"qq={iteration}~{START_MS}~{status}~0~{latency_ms}~{error}~{'~'.join(values)}"


def answer(t_ns: int, text: str) -> str:
    return f"qq_response,{t_ns},1.000000,,,,,,load,,,{text}"


def csv_text() -> str:
    rows = [
        HEADER,
        f"http_reqs,{ORIGIN + int(2.5 * MS)},1.000000,,,true,POST,/identify,load,200,,qq=0",
        f"http_req_duration,{ORIGIN + int(2.5 * MS)},2.400000,,,true,POST,/identify,load,200,,qq=0",
        answer(ORIGIN + int(2.6 * MS), record(0, 200, 2.5, headers="100~42~12~~~gateway-1~3")),
        f"iterations,{ORIGIN + int(2.6 * MS)},1.000000,,,,,,load,,,",
        f"http_reqs,{ORIGIN + int(11.5 * MS)},1.000000,,,true,POST,/identify,load,429,,qq=1",
        f"dropped_iterations,{ORIGIN + 20 * MS + 10_000},1.000000,,,,,,load,,,",
        answer(ORIGIN + int(11.6 * MS), record(1, 429, 1.2, headers="100~0~9~7~~gateway-2~")),
        f"http_reqs,{ORIGIN + int(30.1 * MS)},1.000000,dial: connection refused,1212,false,GET,/health,load,0,,qq=2",
        answer(ORIGIN + int(30.2 * MS), record(2, 0, 0, "dial%3A%20connection%20refused")),
        f"http_reqs,{ORIGIN + 41 * MS},1.000000,,,true,POST,/identify,load,200,,qq=3",  # no record: interrupted
        answer(ORIGIN + 50 * MS, "qq=9~broken"),  # malformed: ignored
    ]
    return "\n".join(rows) + "\n"


def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_each_request_k6_counted_becomes_one_row(tmp_path: Path) -> None:
    the_plan = plan()
    samples = read_samples(write_csv(tmp_path / "k6.csv.gz", csv_text()))
    assert samples.truncated is None and samples.drops_ns.tolist() == [ORIGIN + 20 * MS + 10_000]
    history = history_table(the_plan, samples, "host-k6-1")
    rows = history.table.to_pylist()
    assert [r["sent_ns"] for r in rows] == [ORIGIN, ORIGIN + int(10.3 * MS), ORIGIN + int(30.1 * MS), ORIGIN + 41 * MS]
    assert [r["intended_ns"] for r in rows] == [ORIGIN, ORIGIN + 10 * MS, ORIGIN + 30 * MS, ORIGIN + 40 * MS]
    assert history.origin_ns == ORIGIN and history.orphans == 1
    for iteration, row in enumerate(rows):
        caller, endpoint = the_plan.caller_and_endpoint(iteration)
        assert (row["consumer"], row["tier"], row["endpoint"]) == (caller.consumer, caller.tier, endpoint.path)
        assert (row["method"], row["cost"], row["worker"]) == (endpoint.method, endpoint.cost, "host-k6-1")
    first, limited, refused, orphan = rows
    assert first["latency_ms"] == 2.5 and first["status"] == 200 and first["error"] is None
    assert (first["rl_limit"], first["rl_remaining"], first["rl_reset"], first["retry_after"]) == (100, 42, 12, None)
    assert (first["replica"], first["upstream_ms"], first["degraded"]) == ("gateway-1", 3.0, None)
    assert limited["status"] == 429 and limited["retry_after"] == 7 and limited["rl_remaining"] == 0
    assert refused["status"] == 0 and refused["error"] == "dial: connection refused" and refused["latency_ms"] == 0
    assert orphan["status"] == 200 and orphan["latency_ms"] is None and orphan["rl_limit"] is None


def test_parts_are_history_parts(tmp_path: Path) -> None:
    samples = read_samples(write_csv(tmp_path / "k6.csv.gz", csv_text()))
    history = history_table(plan(), samples, "host-k6-1")
    assert write_history(tmp_path / "history", history, "host-k6-1") == 1
    frame = read_history(tmp_path / "history")
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 4
    assert (tmp_path / "history" / "part-host-k6-1-000001.parquet").is_file()


def test_a_file_cut_short_says_so_and_keeps_what_it_could_read(tmp_path: Path) -> None:
    cut = tmp_path / "cut.csv.gz"  # k6 killed: the gzip stream has no end
    cut.write_bytes(gzip.compress(csv_text().encode())[:-30])
    samples = read_samples(cut)
    assert samples.truncated is not None
    assert len(samples.requests) <= 4


@pytest.mark.parametrize("text", ["", HEADER + "\n"])
def test_no_requests_is_an_empty_history(tmp_path: Path, text: str) -> None:
    samples = read_samples(write_csv(tmp_path / "k6.csv.gz", text))
    history = history_table(plan(), samples, "w")
    assert history.table.num_rows == 0 and history.origin_ns is None
