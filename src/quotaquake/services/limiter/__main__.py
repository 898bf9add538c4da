"""Process entry point: ``python -m quotaquake.services.limiter --host H --port P --redis URL ...``.

See ``quotaquake.services.limiter`` for the design. Bad options or a bad policy file print one line and
exit with code 2.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from pathlib import Path

import uvicorn

from quotaquake.errors import UsageError
from quotaquake.policy import load_policy
from quotaquake.services.limiter.app import LimiterApp
from quotaquake.services.limiter.decider import Limiter
from quotaquake.services.limiter.defects import Defect, parse_defect
from quotaquake.services.limiter.metrics import LimiterMetrics
from quotaquake.services.limiter.registry import ConsumerRegistry
from quotaquake.services.limiter.sentinel import SentinelSharedBuckets, parse_addresses, parse_routes
from quotaquake.services.limiter.shared import SharedBuckets, parse_redis_url

LOG = logging.getLogger("quotaquake.limiter")
REDIS_URL_ENV = "QUOTAQUAKE_REDIS_URL"
POSTGRES_URL_ENV = "QUOTAQUAKE_POSTGRES_URL"
SENTINELS_ENV = "QUOTAQUAKE_REDIS_SENTINELS"
MASTER_ENV = "QUOTAQUAKE_REDIS_MASTER"
ROUTES_ENV = "QUOTAQUAKE_REDIS_ROUTES"
"""URLs with passwords come through the environment (owner-readable), not argv (readable by every user)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m quotaquake.services.limiter", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--redis", default=os.environ.get(REDIS_URL_ENV), help=f"redis://[:password@]host:port/0 (or ${REDIS_URL_ENV})"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(POSTGRES_URL_ENV),
        help=f"postgresql://user[:password]@host:port/db, the consumer registry (or ${POSTGRES_URL_ENV})",
    )
    parser.add_argument(
        "--redis-sentinels",
        default=os.environ.get(SENTINELS_ENV),
        help=f"host:port,... of the Sentinels: find the primary through them and follow it (or ${SENTINELS_ENV})",
    )
    parser.add_argument(
        "--redis-master",
        default=os.environ.get(MASTER_ENV, "qq"),
        help=f"the Sentinels' name of the primary ({MASTER_ENV})",
    )
    parser.add_argument(
        "--redis-routes",
        default=os.environ.get(ROUTES_ENV, ""),
        help=f"node=proxy,... (host:port each): connect to a node through its proxy (or ${ROUTES_ENV})",
    )
    parser.add_argument("--policy", type=Path, required=True, help="policy YAML (stack/policy.yaml)")
    parser.add_argument("--name", default="limiter", help="replica name, shown in logs")
    parser.add_argument("--defect", default=None, help="seeded defect: " + ", ".join(d.value for d in Defect))
    args = parser.parse_args(argv)
    for option, env in (("redis", REDIS_URL_ENV), ("postgres", POSTGRES_URL_ENV)):
        if not getattr(args, option):
            parser.error(f"--{option} (or ${env}) is required")
    return args


def shared_store(args: argparse.Namespace, timeout_s: float, defect: Defect | None) -> SharedBuckets:
    """One Redis node (``--redis``), or the primary the Sentinels name (``--redis-sentinels``); ``ValueError``
    for a malformed address."""
    atomic = defect is not Defect.RACY
    if not args.redis_sentinels:
        return SharedBuckets(args.redis, timeout_s, atomic=atomic)
    return SentinelSharedBuckets(
        args.redis,
        timeout_s,
        sentinels=parse_addresses(args.redis_sentinels),
        master=args.redis_master,
        routes=parse_routes(args.redis_routes),
        follow=defect is not Defect.NO_FAILOVER,
        atomic=atomic,
    )


def build_app(args: argparse.Namespace) -> LimiterApp:
    """Validate the options and the policy, and assemble the ASGI app (no I/O yet)."""
    policy = load_policy(args.policy)
    try:
        defect = parse_defect(args.defect)
        parse_redis_url(args.redis)
        shared = shared_store(args, policy.degradation.redis_timeout_ms / 1000, defect)
    except ValueError as exc:
        raise UsageError(f"limiter options: {exc}") from None
    registry = ConsumerRegistry(args.postgres, frozenset(policy.tiers), refresh_s=policy.registry.refresh_seconds)
    if defect is not None:
        LOG.warning("!!! %s runs with SEEDED DEFECT '%s': its decisions are wrong on purpose !!!", args.name, defect)
    return LimiterApp(Limiter(policy, registry, shared, LimiterMetrics(), defect))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        app = build_app(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Long-lived objects (policy, app, imported modules) leave the collector's generations, and young
    # collections run less often: a gen-2 pass over everything is a millisecond-scale pause in the p99.
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=2048,
        server_header=False,
        date_header=False,
        timeout_keep_alive=75,  # longer than the gateway's upstream idle timeout (60 s): no 503 UC races
    )
    LOG.info("%s listening on http://%s:%d", args.name, args.host, args.port)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
