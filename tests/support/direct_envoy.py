"""A throwaway Envoy that answers every path itself (direct response), for load-generator benchmarks and tests.

Stands in for the stack's gateway when only the generator is measured: every response carries the
rate-limit headers and ``x-quotaquake-replica`` so the recorder's header parsing is exercised too. Paths
under ``/slow/`` are answered after ``slow_ms`` milliseconds (Envoy's fault filter): a slow system.
``DirectEnvoy`` writes a matching stack state file, so scenarios run against it unchanged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from quotaquake.stack.state import Consumer, Endpoints, StackState, write_state

REPO = Path(__file__).resolve().parents[2]
ENVOY = Path(sys.executable).parent / "envoy"

CONFIG = """\
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: direct
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: direct
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              response_headers_to_add:
              - header: {{key: x-quotaquake-replica, value: direct-1}}
              - header: {{key: x-ratelimit-limit, value: "100"}}
              - header: {{key: x-ratelimit-remaining, value: "42"}}
              - header: {{key: x-ratelimit-reset, value: "12"}}
              routes:
              - match: {{prefix: "/slow/"}}
                direct_response: {{status: 200, body: {{inline_string: "ok"}}}}
                typed_per_filter_config:
                  envoy.filters.http.fault:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
                    delay: {{fixed_delay: {slow_s}s, percentage: {{numerator: 100, denominator: HUNDRED}}}}
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "ok"}}}}
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_state(url: str, work_dir: Path, state_path: Path) -> StackState:
    """A state naming ``url`` as gateway, with two consumers per tier of ``stack/policy.yaml``."""
    consumers = [
        Consumer(id=f"{tier}-{n}", tier=tier, key=f"key-{tier}-{n}")
        for tier in ("free", "pro", "enterprise", "partner")
        for n in (1, 2)
    ]
    return StackState(
        provider="external",
        stack_id="direct-envoy",
        work_dir=str(work_dir),
        state_file=str(state_path),
        ready=True,
        replicas=1,
        policy_file=str(REPO / "stack" / "policy.yaml"),
        endpoints=Endpoints(gateway=url),
        consumers=consumers,
    )


class DirectEnvoy:
    """Context manager: starts Envoy (``concurrency`` worker threads), writes ``<work_dir>/stack.json``."""

    def __init__(self, work_dir: Path, concurrency: int = 1, slow_ms: int = 200) -> None:
        self.work_dir = work_dir
        self.concurrency = concurrency
        self.slow_ms = slow_ms
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.request_counter = "http.direct.downstream_rq_total"  # admin /stats counter of requests served
        self.state_path = work_dir / "stack.json"
        self.process: subprocess.Popen[bytes] | None = None

    def served(self) -> int:
        """Requests Envoy has answered so far (its ``downstream_rq_total`` counter)."""
        url = f"{self.admin_url}/stats?filter=^{self.request_counter}$"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return int(text.split(":", 1)[1])

    def __enter__(self) -> DirectEnvoy:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "envoy.yaml"
        config.write_text(
            CONFIG.format(admin=self.admin_port, port=self.port, slow_s=self.slow_ms / 1000), encoding="utf-8"
        )
        log = (self.work_dir / "envoy.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(ENVOY),
                "-c",
                str(config),
                "--concurrency",
                str(self.concurrency),
                "--disable-hot-restart",
                "-l",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._await_ready(deadline=time.monotonic() + 20)
            write_state(fake_state(self.url, self.work_dir, self.state_path), self.state_path)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _await_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.process.returncode}; see {self.work_dir}/envoy.log")
            try:
                with urllib.request.urlopen(self.url + "/calibrate", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)  # poll interval while Envoy starts
        raise RuntimeError(f"envoy not ready on {self.url} within the deadline")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
