"""Domain errors: services raise these, one handler in ``app.py`` renders them.

Each error carries the HTTP status and a machine-readable ``code`` so the CLI, jobs and the HTTP API
can report the same failure the same way; services never know about requests.
"""

from __future__ import annotations

from typing import Any


class LianjieError(Exception):
    """Base of every error a service raises on purpose."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(LianjieError):
    """The request as a whole is unusable (malformed JSON, not gzip …)."""

    status_code = 400
    code = "invalid"


class PayloadTooLarge(LianjieError):
    status_code = 413
    code = "too_large"


class ServiceBusy(LianjieError):
    """The database stayed locked or kept conflicting; the client should retry (SDKs do on 503)."""

    status_code = 503
    code = "busy"


class ValidationFailed(LianjieError):
    status_code = 422
    code = "invalid"


class NotFound(LianjieError):
    status_code = 404
    code = "not_found"


class Conflict(LianjieError):
    status_code = 409
    code = "conflict"


class Unauthenticated(LianjieError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(LianjieError):
    status_code = 403
    code = "forbidden"
