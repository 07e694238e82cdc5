"""Builds the app from a config: which guardrails run, in which order."""
from __future__ import annotations

from fastapi import FastAPI

from guardrails.pipeline import Pipeline

from .app import create_app
from .settings import GatewayConfig


def build_pipeline(config: GatewayConfig) -> Pipeline:
    return Pipeline([])


def build_app(config: GatewayConfig) -> FastAPI:
    return create_app(config, build_pipeline(config))
