"""Liveness and readiness."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Models are loaded and the database answers")
def readyz(request: Request):
    checks = {"models": getattr(request.app.state, "engine", None) is not None}
    db_check = getattr(request.app.state, "db_ready", None)
    if db_check is not None:
        checks["database"] = db_check()
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503
    )
