"""Two small ASGI middlewares and the one JSON error shape every failure answers with.

- :class:`BodyLimitMiddleware`: a request whose ``Content-Length`` or actual body is larger than
  the limit gets 413 before any route sees it (the body is buffered, at most limit + one chunk,
  and replayed to the app).
- :class:`TokenAuthMiddleware`: with a token, every path but the open ones (``/health``; the app
  adds ``/chat``, a static page) needs ``?token=<token>`` (Rasa's token auth) or
  ``Authorization: Bearer <token>``; else 401.

Errors are ``{"error": message, "message": message, "reason": "...", "status": "failure",
"code": http_status}``: ``error`` for plain clients, the rest in Rasa's error layout.
"""
from __future__ import annotations

import hmac
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

import orjson
from starlette.responses import JSONResponse

__all__ = ["BodyLimitMiddleware", "FastJSONResponse", "TokenAuthMiddleware", "error_response"]


class FastJSONResponse(JSONResponse):
    """Starlette's JSONResponse rendered by orjson: the same compact UTF-8 JSON (non-string
    keys as strings, numpy scalars and arrays as numbers and lists) in a fraction of the time;
    NaN and infinity become null instead of an error."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_response(status: int, message: str, reason: str) -> JSONResponse:
    """The JSON body of every error (see the module docstring); never a stack trace."""
    return FastJSONResponse({"error": message, "message": message, "reason": reason,
                         "status": "failure", "code": status}, status_code=status)


class BodyLimitMiddleware:
    """413 for request bodies over ``max_bytes`` (declared or actual)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"the request body is larger than {self.max_bytes} "
                                  "bytes (the server's max_request_bytes)", "RequestTooLarge")
        await response(scope, receive, send)


class TokenAuthMiddleware:
    """401 unless the request carries the token (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, open_paths: tuple[str, ...] = ("/health",)
                 ) -> None:
        self.app, self.token, self.open_paths = app, token.encode(), open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths \
                or scope["method"] == "OPTIONS" or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(401, "missing or wrong token: pass ?token=<token> or the "
                                  "header 'Authorization: Bearer <token>'", "NotAuthenticated")
        await response(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = [value.encode() for value in query.get("token", [])]
        header = _header(scope, b"authorization") or ""
        if header.lower().startswith("bearer "):
            given.append(header[7:].strip().encode())
        return any(hmac.compare_digest(value, self.token) for value in given)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
