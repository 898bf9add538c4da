"""The embedded rate-limit service: tier policy on Redis, consulted by every Envoy gateway replica.

Why Envoy ext_authz (HTTP service mode) and not the global rate limit filter
(``envoy.service.ratelimit.v3`` over gRPC):

- One round trip does what Kong's plugin chain does (key-auth, then rate-limiting): the limiter
  resolves the API key to a consumer and tier (401 for an unknown key), decides the quota, and returns
  the consumer headers for the upstream and the rate-limit headers for the client. With the ratelimit
  filter, key authentication and the descriptor-to-tier mapping would need a second filter and a second
  call, and the ratelimit API cannot return a 401.
- No Envoy proto toolchain: the HTTP service protocol is plain HTTP/1.1, so the service needs no
  generated ``envoy.*`` protobuf stubs.
- Faster in Python: uvicorn + httptools on uvloop with a raw ASGI app (no framework) handles a small
  HTTP/1.1 request with less CPU than grpc.aio's HTTP/2 + protobuf stack (the throwaway grpc.aio
  prototype of issue 3 peaked at 1.9K req/s; see benchmarks/limiter_decisions.py for ours).

Shape: ``app`` (HTTP) -> ``decider.Limiter`` (auth, cost, degradation, defects) -> ``shared``
(one ``decide.lua`` call per decision in Redis, micro-batched per event-loop tick over ``resp``) or
``bucket.LocalBuckets`` (per-process fallback, same arithmetic as the Lua: ``bucket``). ``registry`` caches
the Postgres consumer registry; ``keys`` names the Redis state and exports helpers for scenarios.
Entry point: ``python -m quotaquake.services.limiter`` (``__main__``).
"""
