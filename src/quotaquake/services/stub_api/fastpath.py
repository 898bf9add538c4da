"""Pure-ASGI fast path for the POST routes, installed as the innermost FastAPI middleware.

Measured in-process (no server, one POST /identify): a FastAPI ``@app.post`` route costs ~37 us of
framework time (dependency solving, Request object, exit stacks), a route behind this middleware ~6 us.
Only ``POST`` to ``POST_ROUTES`` is short-circuited; every other request (GET /health, /metrics,
/docs, 404, 405) goes on to FastAPI's router. The FastAPI routes for the same paths stay registered:
they document the API in OpenAPI and serve it when the fast path is off (``create_app(fast_path=False)``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from quotaquake.services.stub_api.behaviour import POST_ROUTES, StubBehaviour

_JSON_HEADER = (b"content-type", b"application/json")


class FastPathMiddleware:
    def __init__(self, app: ASGIApp, behaviour: StubBehaviour) -> None:
        self.app = app
        self.behaviour = behaviour
        self.routes = frozenset(POST_ROUTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.routes:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # client went away
        answer = await self.behaviour.answer(scope["path"], body)
        headers = [_JSON_HEADER, (b"content-length", str(len(answer.body)).encode())]
        headers.extend((name.encode(), value.encode()) for name, value in answer.headers)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
