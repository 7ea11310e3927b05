"""Includes every JSON router."""

from fastapi import APIRouter

from app.api import activations, analysis, health, models, steer

api_router = APIRouter()
for module in (health, models, activations, steer, analysis):
    api_router.include_router(module.router)
