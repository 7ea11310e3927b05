"""Liveness and readiness."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(..., examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(..., description="'ready' or 'not ready'.")
    checks: dict[str, bool] = Field(..., description="models loaded, database answering")


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready yet."}},
    summary="Models are loaded and the database answers",
)
def readyz(request: Request):
    checks = {"models": getattr(request.app.state, "services", None) is not None}
    db_check = getattr(request.app.state, "db_ready", None)
    if db_check is not None:
        checks["database"] = db_check()
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503
    )
