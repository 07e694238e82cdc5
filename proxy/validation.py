"""Request bodies at the HTTP edge: JSON parsing and the shape check, as OpenAI-style 400s.

The shapes themselves live in guardrails.request_shapes (the guardrails walk the same table).
"""

from __future__ import annotations

from typing import Any

import orjson

from guardrails import request_shapes
from guardrails.request_shapes import Endpoint, Parsed, UnknownFields

from . import errors


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise errors.BadRequest("Request body is empty: expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(
            f"We could not parse the JSON body of your request ({exc.args[0].split(':')[0]})", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise errors.BadRequest("Request body must be a JSON object", code="invalid_json")
    return body


def parse(endpoint: Endpoint, body: dict[str, Any], unknown: UnknownFields) -> Parsed:
    """The body checked against its endpoint's shape (guardrails.request_shapes); 400 naming the field."""
    try:
        return request_shapes.parse(endpoint, body, unknown)
    except request_shapes.ShapeError as exc:
        raise errors.BadRequest(exc.message, param=exc.param, code=exc.code) from None
