"""Includes every JSON router."""

from fastapi import APIRouter

from app.api import (
    activations,
    analysis,
    annotations,
    comparisons,
    directions,
    health,
    latents,
    models,
    runs,
    steer,
)
from app.schemas.errors import COMMON

api_router = APIRouter(responses=COMMON)
for module in (
    health,
    models,
    activations,
    steer,
    analysis,
    latents,
    runs,
    comparisons,
    annotations,
    directions,
):
    api_router.include_router(module.router)
