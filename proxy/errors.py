"""One exception hierarchy, mapped once to OpenAI's error JSON and an HTTP status.

Routes raise these; the app's exception handler renders them. Messages must never contain raw
request content (they may reach logs and audit records), only field names and reasons.
"""

from __future__ import annotations

from typing import Any

import orjson

from guardrails.base import Verdict


class GatewayError(Exception):
    """Base class: an error the caller should see in OpenAI's shape."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def json(self) -> bytes:
        return orjson.dumps(self.body())


class BadRequest(GatewayError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class Unauthorized(GatewayError):
    status, type, code = 401, "invalid_request_error", "invalid_api_key"


class Forbidden(GatewayError):
    status, type, code = 403, "invalid_request_error", "forbidden"


class NotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "not_found"


class PayloadTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class Unprocessable(GatewayError):
    status, type, code = 422, "invalid_request_error", "unprocessable_entity"


class RateLimited(GatewayError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class PolicyBlocked(GatewayError):
    """A guardrail refused the request; `code` names the rule that fired."""

    status, type, code = 400, "invalid_request_error", "content_policy_violation"


class PolicyRefusal(PolicyBlocked):
    """A policy rule refused the request; shown as a refusal completion or as this 400 error."""

    def __init__(self, message: str, *, refusal: str, as_completion: bool, code: str) -> None:
        super().__init__(message, code=code)
        self.refusal = refusal
        self.as_completion = as_completion


class SchemaViolation(GatewayError):
    """The model's answer did not satisfy the app's JSON Schema contract, after the re-asks."""

    status, type, code = 502, "api_error", "schema_violation"


class UpstreamError(GatewayError):
    """Every backend failed with an error response or a broken connection."""

    status, type, code = 502, "api_error", "bad_gateway"


class ServiceUnavailable(GatewayError):
    status, type, code = 503, "api_error", "service_unavailable"


class GuardrailUnavailable(ServiceUnavailable):
    """A guardrail could not decide (analyzer error or timeout): fail closed."""

    code = "guardrail_unavailable"


class ResidencyRefused(ServiceUnavailable):
    """The only remaining backend is hosted and the policy forbids this data to leave the network."""

    code = "residency_refused"


class AuditUnavailable(ServiceUnavailable):
    """The audit store is down and the policy says to fail closed."""

    code = "audit_unavailable"


class UpstreamTimeout(GatewayError):
    status, type, code = 504, "api_error", "timeout"


def error_response_bytes(
    status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> bytes:
    """Render an error that did not start as a GatewayError (404 routes, framework errors)."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def from_verdict(verdict: Verdict) -> GatewayError:
    """The HTTP error for a guardrail's verdict that is not allow."""
    if verdict.action == "unavailable":
        return GuardrailUnavailable(verdict.message)
    if verdict.action == "refuse":
        return PolicyRefusal(
            verdict.message,
            refusal=verdict.refusal or "",
            as_completion=verdict.as_completion,
            code=verdict.code or "content_policy_violation",
        )
    return PolicyBlocked(verdict.message, code=verdict.code)
