"""Serve the stub API with uvicorn (uvloop event loop, httptools parser, no access log).

The listening socket is bound here, before uvicorn starts, so an address in use is one clear
``UsageError`` line instead of a log record and exit code 1. With ``workers > 1`` uvicorn's
supervisor forks workers that share the socket and build the app from ``$QUOTAQUAKE_STUB_API_SETTINGS``;
their metrics are aggregated through a temporary ``$PROMETHEUS_MULTIPROC_DIR`` removed on exit.
"""

from __future__ import annotations

import os
import socket
import tempfile

import uvicorn
from uvicorn.supervisors import Multiprocess

from quotaquake.errors import UsageError
from quotaquake.services.stub_api.metrics import MULTIPROC_ENV_VAR
from quotaquake.services.stub_api.settings import SETTINGS_ENV_VAR, StubSettings

APP_FACTORY = "quotaquake.services.stub_api.app:app_from_env"
LISTEN_BACKLOG = 2048
# Idle keep-alive connections are closed after this many seconds. Longer than uvicorn's default 5 s so a
# proxy (Envoy) that pools upstream connections rarely sends a request on a connection being closed;
# keep the proxy's upstream idle timeout below this value.
KEEP_ALIVE_S = 75


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; failure is a ``UsageError`` naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise UsageError(f"stub-api: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _config(app: object, settings: StubSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        factory=isinstance(app, str),
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=LISTEN_BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


def serve(settings: StubSettings) -> None:
    """Run until SIGINT/SIGTERM. Blocks."""
    sock = bind_socket(settings.host, settings.port)
    if settings.workers == 1:
        from quotaquake.services.stub_api.app import create_app

        uvicorn.Server(_config(create_app(settings), settings)).run(sockets=[sock])
        return
    with tempfile.TemporaryDirectory(prefix="quotaquake-stub-metrics-") as metrics_dir:
        os.environ[SETTINGS_ENV_VAR] = settings.model_dump_json()
        os.environ[MULTIPROC_ENV_VAR] = metrics_dir
        Multiprocess(_config(APP_FACTORY, settings), sockets=[sock]).run()
