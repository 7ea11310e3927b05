"""Includes every JSON router."""

from fastapi import APIRouter

from app.api import activations, health, models, steer

api_router = APIRouter()
for module in (health, models, activations, steer):
    api_router.include_router(module.router)
