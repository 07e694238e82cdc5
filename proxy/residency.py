"""The router's gate: the guardrails' route stage (residency) for one request, as HTTP errors."""

from __future__ import annotations

from typing import Any

from guardrails.base import GuardContext
from guardrails.pipeline import Pipeline

from . import errors
from .backends import Backend
from .routing import Gate


def route_gate(pipeline: Pipeline, ctx: GuardContext, hosted: set[str]) -> Gate | None:
    """What each deployment may receive of this request, or None when no guardrail checks routes."""
    if not hosted or not pipeline.checks_routes(ctx):
        return None

    def gate(backend: Backend, body: dict[str, Any]) -> dict[str, Any]:
        verdict, out = pipeline.check_route(ctx, backend.id, backend.id in hosted, body)
        if not verdict.allowed:
            raise errors.ResidencyRefused(verdict.message)
        return out

    return gate
