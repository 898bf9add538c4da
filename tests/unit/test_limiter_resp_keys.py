"""The RESP parser (incremental input) and the Redis key helpers."""

from __future__ import annotations

import calendar

import pytest

from quotaquake.services.limiter.keys import bucket_key, current_month, month_key, seconds_to_month_end
from quotaquake.services.limiter.resp import RespError, _Incomplete, encode_command, parse_reply
from quotaquake.services.limiter.shared import outcome_of, parse_redis_url

SCRIPT_REPLY = b"*5\r\n:1\r\n:0\r\n:0\r\n$3\r\n149\r\n$1\r\n1\r\n"


def test_encode_command() -> None:
    assert encode_command([b"GET", b"k"]) == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"+PONG\r\n", b"PONG"),
        (b":42\r\n", 42),
        (b"$-1\r\n", None),
        (b"$0\r\n\r\n", b""),
        (b"*2\r\n$1\r\na\r\n*1\r\n:3\r\n", [b"a", [3]]),
    ],
)
def test_parse_reply(raw: bytes, value: object) -> None:
    assert parse_reply(raw, 0) == (value, len(raw))


def test_error_reply_is_a_value() -> None:
    reply, _ = parse_reply(b"-NOSCRIPT No matching script\r\n", 0)
    assert isinstance(reply, RespError) and str(reply).startswith("NOSCRIPT")


@pytest.mark.parametrize("cut", range(1, len(SCRIPT_REPLY)))
def test_every_truncation_is_incomplete(cut: int) -> None:
    with pytest.raises(_Incomplete):
        parse_reply(SCRIPT_REPLY[:cut], 0)


def test_script_reply_becomes_an_outcome() -> None:
    outcome = outcome_of(parse_reply(SCRIPT_REPLY, 0)[0])
    assert outcome.allowed and outcome.tokens == 149.0 and outcome.month_used == 1.0


def test_keys_share_the_consumer_hash_tag() -> None:
    assert bucket_key("free-1") == "qq:{free-1}:bucket"
    assert month_key("free-1", "2026-11") == "qq:{free-1}:month:2026-11"


def test_month_boundaries_are_utc() -> None:
    last_second = calendar.timegm((2026, 12, 31, 23, 59, 59, 0, 0, 0))
    assert current_month(last_second) == "2026-12"
    assert current_month(last_second + 1) == "2027-01"
    assert seconds_to_month_end(last_second) == 1


def test_redis_url_is_checked() -> None:
    assert parse_redis_url("redis://127.0.0.1:7000/0") == ("127.0.0.1", 7000)
    with pytest.raises(ValueError, match="redis://"):
        parse_redis_url("http://x")
