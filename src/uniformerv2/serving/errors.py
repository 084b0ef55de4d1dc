"""The service's one error answer (:class:`ApiError`, for HTTP requests and WebSocket handshakes alike) and its
one access rule (:func:`check_key`)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

__all__ = ["ApiError", "check_key", "INVALID_TOKEN"]

INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class ApiError(Exception):
    """An answer with a 4xx/5xx status and a JSON body ``{"error": message}`` that says what is wrong (a refused
    WebSocket handshake gets the same answer)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def check_key(api_key: str | None, token: str | None, *, how: str) -> None:
    """Nothing without a key configured; else 401 without a ``token``, 403 with a wrong one. ``how``: how this
    endpoint takes the key, for the 401's message."""
    if not api_key:
        return
    if not token:
        raise ApiError(401, f"an API key is required: {how}", {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.encode(), api_key.encode()):
        raise ApiError(403, "wrong API key", INVALID_TOKEN)
