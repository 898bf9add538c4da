"""A stand-in for a Kong 3.9 gateway (key-auth with an anonymous consumer + rate-limiting, ``policy: redis``,
``sync_rate: -1``) over a real Redis, for end-to-end tests of the external path where no Kong can run.

Per request, as Kong 3.9.3 does (``docs/kong-3.9.md``):

* key-auth: ``apikey`` or ``x-api-key``; a missing or unknown key becomes the anonymous consumer
  (``key-auth/handler.lua:233-243``), counted per client address: the leftmost ``X-Forwarded-For`` entry
  when ``trust_forwarded`` (Kong's ``trusted_ips``), else the peer;
* the clock is read once, whole seconds, when the plugin runs (``handler.lua:127``);
* per configured period one Redis script INCRs ``ratelimit:<zero>:<zero>:<identifier>:<start ms>:<period>``
  (setting its TTL on the first INCR) and returns the count before (``policies/init.lua:68-73,407-415``);
* admission, headers and ``Retry-After`` by ``kong_decision`` (a replay of ``handler.lua:89-205``);
  429 body ``{"message": "API rate limit exceeded", "request_id": ...}`` (``kong/pdk/response.lua``);
* a Redis error or a call slower than ``redis_timeout_ms``: with ``fault_tolerant`` the request is proxied
  with no rate-limit header and no limit, else 500 (``handler.lua:144-152``); periods already INCRed stay
  counted;
* ``/calibrate`` and ``/gateway-health``: 200 without auth or limits (request-termination).

Defects for the checks to catch: ``no-count-429`` (rejections not counted: Kong <= 3.3) and
``limits`` overrides (a consumer whose plugin has other limits than the target file declares).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
import uvicorn
from fastapi import FastAPI, Request, Response

from quotaquake.stack.kong import EMPTY_UUID, window_start_ms
from quotaquake.stack.processes import free_port
from quotaquake.verify.models.kong import EXPIRATION_S, kong_decision

_INCR_BEFORE = """
local count = redis.call('incr', KEYS[1])
if count == 1 then redis.call('expire', KEYS[1], ARGV[1]) end
return count - 1
"""


@dataclass
class Emulated:
    """The gateway's configuration: keys -> (consumer id, limits); the anonymous consumer's limits."""

    redis_url: str
    consumers: Mapping[str, tuple[str, dict[str, int]]]
    anonymous: dict[str, int]
    trust_forwarded: bool = True
    fault_tolerant: bool = True
    redis_timeout_ms: float = 50.0
    defect: str | None = None
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)


def _periods_start(period: str, now_s: int) -> int:
    if period in ("minute", "month"):
        return window_start_ms(period, now_s)
    size = EXPIRATION_S[period]
    return (now_s // size) * size * 1000


def app_for(config: Emulated) -> FastAPI:
    app = FastAPI()
    timeout_s = config.redis_timeout_ms / 1000.0
    client = redis.Redis.from_url(config.redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    incr_before = client.register_script(_INCR_BEFORE)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    def handle(path: str, request: Request) -> Response:
        if f"/{path}" in ("/calibrate", "/gateway-health"):
            return Response("calibrate", status_code=200)
        key = request.headers.get("apikey") or request.headers.get("x-api-key")
        consumer = config.consumers.get(key or "")
        if consumer is None:
            forwarded = request.headers.get("x-forwarded-for", "")
            peer = request.client.host if request.client else "unknown"
            identifier = forwarded.split(",")[0].strip() if config.trust_forwarded and forwarded else peer
            limits = config.anonymous
        else:
            identifier, limits = consumer
            limits = config.overrides.get(identifier, limits)
        if not limits:
            return Response(json.dumps({"ok": True}), media_type="application/json")
        now_s = int(time.time())
        counts = {}
        try:
            for period in limits:
                start = _periods_start(period, now_s)
                key_name = f"ratelimit:{EMPTY_UUID}:{EMPTY_UUID}:{identifier}:{start}:{period}"
                counts[period] = int(incr_before(keys=[key_name], args=[EXPIRATION_S[period]]))
        except redis.RedisError:
            if not config.fault_tolerant:
                body = {"message": "An unexpected error occurred", "request_id": uuid.uuid4().hex}
                return Response(json.dumps(body), 500, media_type="application/json")
            return Response(json.dumps({"ok": True}), media_type="application/json")  # no limit, no headers
        decision = kong_decision(limits, counts, now_s)
        if not decision.admitted:
            if config.defect == "no-count-429":  # Kong <= 3.3 never counted a rejected request
                for period in limits:
                    start = _periods_start(period, now_s)
                    client.decr(f"ratelimit:{EMPTY_UUID}:{EMPTY_UUID}:{identifier}:{start}:{period}")
            body = {"message": "API rate limit exceeded", "request_id": uuid.uuid4().hex}
            return Response(json.dumps(body), 429, headers=dict(decision.headers), media_type="application/json")
        return Response(json.dumps({"ok": True}), headers=dict(decision.headers), media_type="application/json")

    return app


@contextmanager
def running(config: Emulated) -> Iterator[str]:
    """Serve ``config`` on 127.0.0.1 (a free port) in a thread; yields the base URL; stops on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app_for(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
