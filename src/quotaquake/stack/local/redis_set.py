"""The embedded stack's Redis in its three topologies (``StackState.redis``), as processes to start.

* ``single``: one node, service ``redis`` (the limiters talk to it directly);
* ``proxied``: the same node behind an Envoy ``redis_proxy`` (service ``redis-proxy``): the limiters talk to
  the proxy, where latency faults are switched on and off (``quotaquake.faults.latency``);
* ``sentinel``: a primary ``redis-1`` and a replica ``redis-2`` (Debian's redis-server), three Sentinels
  ``sentinel-1..3`` (the same binary with ``--sentinel``, quorum 2) and one proxy listener per data node.
  The limiters ask the Sentinels for the primary and map its address to its proxy listener
  (``services/limiter/sentinel.py``); Sentinels and the harness reach the nodes directly.

Sentinel timings (measured on this machine, docs/research/failover-and-k6.md section 1):
``down-after-milliseconds`` 1000 (a SIGKILLed primary is replaced 2.2-2.3 s later; 500 would fail over on
a half-second stall of a busy 2-core machine), ``failover-timeout`` 3000 (a failed election is retried after
6 s, not 6 minutes), ``parallel-syncs`` 1. Every data node carries ``masterauth`` and
``replica-announce-ip``: any of them may become a replica after a failover. No persistence (``save ""``):
a node restarted empty rejoins as a replica of the current primary (``ReplicatedNodeHandle``), never as a
second, empty primary.

Each Sentinel gets a fresh, writable config file of its own in its own folder: it rewrites the file to keep
its state (``sentinel myid``, known replicas and Sentinels, the epoch) and refuses to start without one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from quotaquake.stack import processes
from quotaquake.stack.state import RedisTopology, ServiceRecord, StackState

MASTER_NAME = "qq"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
QUORUM = 2
SENTINEL_COUNT = 3
DATA_NODES = 2  # the primary and one replica
DELAYS_MS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500)
"""Delay levels of the proxy's latency faults, ms: Envoy's DELAY fault has one fixed delay, so each level
is a fault of its own with its own runtime key (``runtime_key``)."""
RUNTIME_PREFIX = "qq.redis"
PROXY_SERVICE = "redis-proxy"
SINGLE_NODE = "redis"

RecordFactory = Callable[..., ServiceRecord]
"""``(state, name, kind, argv, **extra) -> ServiceRecord``: the provider's record builder."""


def runtime_key(delay_ms: int) -> str:
    """The proxy's runtime key switching the ``delay_ms`` fault (value: percent of commands, 0 or 100)."""
    return f"{RUNTIME_PREFIX}.delay_{delay_ms}ms"


def node_names(topology: RedisTopology) -> list[str]:
    """Data node service names: ``redis`` for one node, ``redis-1``, ``redis-2`` for a replicated set."""
    if topology == "sentinel":
        return [f"redis-{n}" for n in range(1, DATA_NODES + 1)]
    return [SINGLE_NODE]


@dataclass
class RedisPorts:
    """Ports of the Redis services: data nodes (the first is the initial primary), Sentinels, the proxy's
    listeners (one per data node, same order) and its admin port."""

    nodes: list[int]
    sentinels: list[int] = field(default_factory=list)
    proxies: list[int] = field(default_factory=list)
    proxy_admin: int | None = None

    @classmethod
    def allocate(cls, topology: RedisTopology, reserve: Callable[[], int]) -> RedisPorts:
        nodes = [reserve() for _ in node_names(topology)]
        if topology == "single":
            return cls(nodes)
        sentinels = [reserve() for _ in range(SENTINEL_COUNT)] if topology == "sentinel" else []
        return cls(nodes, sentinels, [reserve() for _ in nodes], reserve())


@dataclass(frozen=True)
class ProxyNode:
    """One listener of the proxy: ``name`` (stat prefix and cluster), its port, the data node's port."""

    name: str
    proxy_port: int
    port: int


def address(port: int) -> str:
    return f"127.0.0.1:{port}"


def redis_url(port: int, password: str) -> str:
    from quotaquake.stack.urls import with_password

    return with_password(f"redis://127.0.0.1:{port}/0", "", password)


def single_node_lines(port: int, password: str) -> list[str]:
    """Config of the one node of ``single`` and ``proxied``."""
    return [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no", "daemonize no",
            "loglevel warning", "set-proc-title no", f"requirepass {password}"]  # fmt: skip


def data_node_lines(port: int, password: str, folder: Path, primary_port: int | None) -> list[str]:
    """Config of a data node; ``primary_port`` makes it a replica of that node (``None``: a primary).

    Nothing reaches the disk: the primary streams its snapshot to replicas (``repl-diskless-sync``) and
    replicas load it from the socket (``repl-diskless-load swapdb``); a node started again finds no
    ``dump.rdb`` in its own folder and starts empty, as a node without persistence does."""
    lines = [
        f"port {port}", "bind 127.0.0.1", f"dir {folder}", 'save ""', "appendonly no", "daemonize no",
        "loglevel notice", "set-proc-title no", f"requirepass {password}", f"masterauth {password}",
        "replica-announce-ip 127.0.0.1", "repl-diskless-sync yes", "repl-diskless-sync-delay 0",
        "repl-diskless-load swapdb",
    ]  # fmt: skip
    if primary_port is not None:
        lines.append(f"replicaof 127.0.0.1 {primary_port}")
    return lines


def sentinel_lines(port: int, folder: Path, password: str, primary_port: int) -> list[str]:
    """Config of one Sentinel (its ``sentinel <option> <name>`` lines must follow ``sentinel monitor``)."""
    return [
        f"port {port}", "bind 127.0.0.1", "daemonize no", "set-proc-title no", "loglevel notice", 'logfile ""',
        f"dir {folder}", f"requirepass {password}", "sentinel announce-ip 127.0.0.1", f"sentinel announce-port {port}",
        "sentinel resolve-hostnames no", "sentinel announce-hostnames no",
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} {QUORUM}",
        f"sentinel auth-pass {MASTER_NAME} {password}",
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
    ]  # fmt: skip


def write_private(path: Path, lines: list[str]) -> None:
    """Write a config file readable by its owner only (it holds the password)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class RedisPlan:
    """The Redis services of one stack: what to start and what the limiters are told."""

    topology: RedisTopology
    ports: RedisPorts
    password: str
    work_dir: Path

    @property
    def names(self) -> list[str]:
        return node_names(self.topology)

    def primary_url(self) -> str:
        return redis_url(self.ports.nodes[0], self.password)

    def sentinel_urls(self) -> list[str]:
        return [redis_url(port, self.password) for port in self.ports.sentinels]

    def proxy_routes(self) -> dict[str, str]:
        """Data node address -> the address of its proxy listener."""
        return {address(node): address(proxy) for node, proxy in zip(self.ports.nodes, self.ports.proxies, strict=True)}

    def node_records(self, state: StackState, record: RecordFactory, server: str) -> list[ServiceRecord]:
        """One record per data node; config files (0600) written now."""
        records = []
        for index, (name, port) in enumerate(zip(self.names, self.ports.nodes, strict=True)):
            config = self.work_dir / f"{name}.conf"
            extra: dict[str, object] = {}
            if self.topology == "sentinel":
                folder = self.work_dir / name
                folder.mkdir(mode=0o700)
                primary = None if index == 0 else self.ports.nodes[0]
                lines = data_node_lines(port, self.password, folder.resolve(), primary)
                extra["cwd"] = str(folder)
            else:
                lines = single_node_lines(port, self.password)
            write_private(config, lines)
            url = redis_url(port, self.password)
            records.append(
                record(state, name, "redis", [server, str(config.resolve())], url=url, ready_url=url, **extra)
            )
        return records

    def sentinel_records(self, state: StackState, record: RecordFactory, server: str) -> list[ServiceRecord]:
        """One record per Sentinel, each with a fresh config file in its own folder."""
        records = []
        for n, port in enumerate(self.ports.sentinels, 1):
            folder = self.work_dir / f"sentinel-{n}"
            folder.mkdir(mode=0o700)
            config = folder / "sentinel.conf"
            write_private(config, sentinel_lines(port, folder.resolve(), self.password, self.ports.nodes[0]))
            url = redis_url(port, self.password)
            argv = [server, str(config.resolve()), "--sentinel"]
            records.append(record(state, f"sentinel-{n}", "sentinel", argv, url=url, ready_url=url, cwd=str(folder)))
        return records

    def proxy_nodes(self) -> list[ProxyNode]:
        return [
            ProxyNode(name.replace("-", "_"), proxy, port)
            for name, proxy, port in zip(self.names, self.ports.proxies, self.ports.nodes, strict=True)
        ]

    def limiter_env(self, names: dict[str, str]) -> dict[str, str]:
        """What a limiter is told (``names``: the environment variable of each item): the URL it uses (the
        proxy's for ``proxied``; for ``sentinel`` the primary's, for its password), and for ``sentinel`` the
        Sentinels, the master name and the node -> proxy routes."""
        if self.topology == "proxied":
            return {names["url"]: redis_url(self.ports.proxies[0], self.password)}
        env = {names["url"]: self.primary_url()}
        if self.topology == "sentinel":
            env[names["sentinels"]] = ",".join(address(port) for port in self.ports.sentinels)
            env[names["master"]] = MASTER_NAME
            env[names["routes"]] = ",".join(f"{node}={proxy}" for node, proxy in self.proxy_routes().items())
        return env


def reserve_port(held: list[socket.socket]) -> int:
    """A loopback port held (``processes.reserve_port``) in ``held`` until the stack is up."""
    sock = processes.reserve_port()
    held.append(sock)
    return int(sock.getsockname()[1])
