"""Asking a running replicated Redis set (topology ``sentinel``) what it is now: which node the Sentinels
name primary, whether the set is healthy again, and keeping the state file's ``endpoints.redis`` on the
current primary.

Every call has a short timeout; a node or Sentinel that does not answer counts as a problem, never as
healthy. redis-py speaks RESP2 here (its default: replies are flat lists, not maps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis

from quotaquake.errors import StackError
from quotaquake.stack.local.redis_set import MASTER_NAME, SENTINEL_COUNT, address, redis_url
from quotaquake.stack.state import StackState, read_state, write_state

QUERY_TIMEOUT_S = 0.5


def client(url: str, timeout_s: float = QUERY_TIMEOUT_S) -> redis.Redis[str]:
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def password_of(state: StackState) -> str:
    url = state.require_endpoints().redis or ""
    return unquote(urlsplit(url).password or "")


def is_replicated(state: StackState) -> bool:
    return state.redis == "sentinel" and bool(state.require_endpoints().redis_sentinels)


def data_nodes(state: StackState) -> dict[str, str]:
    """Data node service name -> its direct URL (``redis-1``, ``redis-2``; ``redis`` for one node)."""
    services = sorted(state.services.items())
    return {name: record.url for name, record in services if record.kind == "redis" and record.url}


def node_at(state: StackState, host: str, port: int) -> str | None:
    """The data node service listening at ``host:port``, if the stack has one."""
    wanted = address(port) if host in ("127.0.0.1", "localhost") else f"{host}:{port}"
    for name, url in data_nodes(state).items():
        if ":".join(map(str, host_port(url))) == wanted:
            return name
    return None


@dataclass(frozen=True)
class SentinelView:
    """What one Sentinel says of the primary: its address, the configuration epoch it learned it in (a
    promotion raises it: the highest epoch is the newest view) and its flags (``s_down``, ``o_down``...)."""

    address: tuple[str, int]
    epoch: int
    flags: str


def sentinel_views(state: StackState, timeout_s: float = QUERY_TIMEOUT_S) -> dict[str, SentinelView | None]:
    """Each Sentinel's ``SENTINEL MASTER`` (``None``: no answer), by ``host:port``."""
    master = state.require_endpoints().redis_master or MASTER_NAME
    views: dict[str, SentinelView | None] = {}
    for url in state.require_endpoints().redis_sentinels:
        where = ":".join(map(str, host_port(url)))
        try:
            with client(url, timeout_s) as sentinel:
                fields = _pairs(sentinel.execute_command("SENTINEL", "MASTER", master))
            address = (fields["ip"], int(fields["port"]))
            views[where] = SentinelView(address, int(fields.get("config-epoch", "0")), fields.get("flags", ""))
        except (redis.RedisError, OSError, ValueError, KeyError):
            views[where] = None
    return views


def master_address(state: StackState, timeout_s: float = QUERY_TIMEOUT_S) -> tuple[str, int]:
    """The primary of the newest view (highest configuration epoch) among the Sentinels that answer;
    ``StackError`` when none answers."""
    views = [v for v in sentinel_views(state, timeout_s).values() if v is not None]
    if not views:
        raise StackError("sentinel", "no Sentinel answered SENTINEL MASTER")
    return max(views, key=lambda v: v.epoch).address


def primary_node(state: StackState) -> str:
    """The data node service the Sentinels name primary; ``StackError`` if it is not one of the stack's."""
    host, port = master_address(state)
    name = node_at(state, host, port)
    if name is None:
        raise StackError("sentinel", f"the Sentinels name {host}:{port} primary, which is no node of this stack")
    return name


def sentinel_config(state: StackState) -> dict[str, int]:
    """``down-after-milliseconds``, ``failover-timeout``, ``quorum`` as the first answering Sentinel has them."""
    master = state.require_endpoints().redis_master or MASTER_NAME
    for url in state.require_endpoints().redis_sentinels:
        try:
            with client(url) as sentinel:
                fields = _pairs(sentinel.execute_command("SENTINEL", "MASTER", master))
        except (redis.RedisError, OSError):
            continue
        return {key: int(fields[key]) for key in ("down-after-milliseconds", "failover-timeout", "quorum")}
    raise StackError("sentinel", "no Sentinel answered SENTINEL MASTER")


def _pairs(reply: object) -> dict[str, str]:
    """A flat ``[key, value, key, value, ...]`` reply as a mapping."""
    if isinstance(reply, Mapping):
        return {str(k): str(v) for k, v in reply.items()}
    items = [str(x) for x in reply] if isinstance(reply, list) else []
    return dict(zip(items[::2], items[1::2], strict=False))


def replication(url: str, timeout_s: float = QUERY_TIMEOUT_S) -> dict[str, object]:
    """``INFO replication`` of one node (raises ``redis.RedisError``/``OSError`` when it does not answer)."""
    with client(url, timeout_s) as node:
        return dict(node.info("replication"))


def set_problems(state: StackState) -> list[str]:
    """Why the replicated set is not healthy (empty when it is): exactly one primary, the Sentinels agree
    on it and reach their quorum, every other node replicates from it with its link up, and every
    Sentinel sees every replica and the other Sentinels up."""
    if not is_replicated(state):
        return []
    roles: dict[str, dict[str, object]] = {}
    problems: list[str] = []
    for name, url in data_nodes(state).items():
        try:
            roles[name] = replication(url)
        except (redis.RedisError, OSError) as exc:
            problems.append(f"{name}: {type(exc).__name__}")
    primaries = [name for name, info in roles.items() if info.get("role") == "master"]
    if len(primaries) != 1:
        return [*problems, f"{len(primaries)} primaries ({', '.join(primaries) or 'none'})"]
    primary = primaries[0]
    views = sentinel_views(state)
    named = {where: node_at(state, *v.address) if v else None for where, v in views.items()}
    wrong = {where: node for where, node in named.items() if node != primary}
    problems += [f"sentinel {where} names {node or 'nothing'} primary" for where, node in wrong.items()]
    primary_port = host_port(data_nodes(state)[primary])[1]
    for name, info in roles.items():
        if name == primary:
            continue
        if info.get("master_port") != primary_port or info.get("master_link_status") != "up":
            problems.append(f"{name}: not replicating from {primary} (link {info.get('master_link_status')})")
    problems += _sentinel_views(state, len(roles) - 1)
    return problems


def _sentinel_views(state: StackState, replicas: int) -> list[str]:
    master = state.require_endpoints().redis_master or MASTER_NAME
    problems = []
    for url in state.require_endpoints().redis_sentinels:
        where = ":".join(map(str, host_port(url)))
        try:
            with client(url) as sentinel:
                quorum = str(sentinel.execute_command("SENTINEL", "CKQUORUM", master))
                seen = [_pairs(r) for r in sentinel.execute_command("SENTINEL", "REPLICAS", master)]
                others = [_pairs(r) for r in sentinel.execute_command("SENTINEL", "SENTINELS", master)]
        except (redis.RedisError, OSError) as exc:
            problems.append(f"sentinel {where}: {type(exc).__name__}: {exc}")
            continue
        if not quorum.startswith("OK"):
            problems.append(f"sentinel {where}: {quorum}")
        up = [r for r in seen if "s_down" not in r.get("flags", "") and "disconnected" not in r.get("flags", "")]
        if len(up) < replicas:
            problems.append(f"sentinel {where} sees {len(up)} of {replicas} replica(s) up")
        if len([s for s in others if "s_down" not in s.get("flags", "")]) < SENTINEL_COUNT - 1:
            problems.append(f"sentinel {where} sees {len(others)} other Sentinel(s)")
    return problems


def refresh_primary_endpoint(state_file: Path) -> StackState:
    """Point the state file's ``endpoints.redis`` at the node the Sentinels name primary (the harness resets
    and seeds quota state there); returns the state as written. Unchanged when the topology is not
    replicated."""
    state = read_state(state_file)
    if not is_replicated(state):
        return state
    host, port = master_address(state)
    endpoints = state.require_endpoints()
    url = redis_url(port, password_of(state)) if host == "127.0.0.1" else endpoints.redis
    if url != endpoints.redis:
        state.endpoints = endpoints.model_copy(update={"redis": url})
        write_state(state, state_file)
    return state


def rejoin_config(config: Path, host: str, port: int) -> None:
    """Rewrite a data node's config file so that it starts as a replica of ``host:port`` (the file may have
    been rewritten by Sentinel: every earlier ``replicaof``/``slaveof`` line goes)."""
    lines = config.read_text().splitlines()
    kept = [line for line in lines if not line.strip().lower().startswith(("replicaof ", "slaveof "))]
    config.write_text("\n".join([*kept, f"replicaof {host} {port}"]) + "\n")
