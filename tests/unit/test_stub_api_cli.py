"""Command line of the stub API: bad options give one clear line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from quotaquake.errors import UsageError
from quotaquake.services.stub_api.__main__ import main
from quotaquake.services.stub_api.settings import parse_settings


def test_valid_options_become_settings() -> None:
    settings = parse_settings(
        ["--port", "9000", "--latency-median-ms", "0", "--error-rate", "0.5", "--error-status", "503", "--workers", "2"]
    )
    assert (settings.port, settings.latency_median_ms, settings.error_rate) == (9000, 0.0, 0.5)
    assert (settings.error_status, settings.workers, settings.host) == (503, 2, "127.0.0.1")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "0"], "--port: input should be greater than or equal to 1"),
        (["--port", "70000"], "--port: input should be less than or equal to 65535"),
        (["--port", "abc"], "argument --port: invalid int value: 'abc'"),
        ([], "the following arguments are required: --port"),
        (["--port", "9000", "--error-rate", "1.5"], "--error-rate: input should be less than or equal to 1"),
        (["--port", "9000", "--error-status", "200"], "--error-status: input should be greater than or equal"),
        (["--port", "9000", "--latency-median-ms", "-1"], "--latency-median-ms: input should be greater"),
        (["--port", "9000", "--workers", "0"], "--workers: input should be greater than or equal to 1"),
        (["--port", "9000", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_are_one_line_usage_errors(argv: list[str], expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_settings(argv)
    message = str(caught.value)
    assert message.startswith("stub-api: ") and expected in message
    assert "\n" not in message


def test_module_entry_point_prints_one_line_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quotaquake.services.stub_api", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["stub-api: --port: input should be greater than or equal to 1 (got 0)"]
    assert done.stdout == ""


def test_address_in_use_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"stub-api: cannot listen on 127.0.0.1:{port}: Address already in use"]
