"""Saved runs and comparisons of runs: what is stored, listed and shared as links."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from app.schemas.fields import TITLE_LENGTH, Body, StoredText, Title

MAX_COMPARISON_RUNS = 100
MAX_DESCRIPTION = 5000


# ------------------------------------------------------------------------------------ runs
class RunCreate(Body):
    kind: str = Field(
        ...,
        description="Which computation: a request kind (the endpoint POST /api/<kind>); "
        "GET /api/kinds lists them.",
        examples=["steer"],
    )
    request: dict[str, Any] = Field(
        ..., description="The same body that endpoint takes; the server runs it itself."
    )
    title: Title = Field(..., description=f"A title for the link (1-{TITLE_LENGTH} characters).")
    unlisted: bool = Field(
        False, description="Leave the run out of GET /api/runs; its link works all the same."
    )


class RunSummary(BaseModel):
    id: str
    url: str = Field(..., description="The read-only page of the run (share this).")
    kind: str
    title: str
    created_at: datetime
    models: list[str] = Field(..., description="Model ids the run used.")
    saes: list[str] = Field(..., description="SAE ids the run used.")


class RunPublic(RunSummary):
    request: dict[str, Any] = Field(
        ..., description="The validated request, every default filled in."
    )
    result: dict[str, Any] = Field(..., description="Exactly what POST /api/<kind> returned.")
    provenance: dict[str, Any] = Field(
        ...,
        description="Fingerprints of the weights and files used (models, saes, judges, "
        "question_sets), seed, temperature, app and library versions, device, dtype, times.",
    )
    result_sha256: str = Field(..., description="sha256 of the result as canonical JSON.")


class RunsPublic(BaseModel):
    data: list[RunSummary]
    count: int = Field(..., description="How many listed runs match, over all pages.")


class RunCreated(BaseModel):
    id: str
    url: str
    created_at: datetime
    result: dict[str, Any]
    provenance: dict[str, Any]
    delete_token: str = Field(
        ...,
        description="Shown once: send it as X-Delete-Token to DELETE the run. The server "
        "keeps only its hash.",
    )


class RerunResult(BaseModel):
    id: str
    identical: bool = Field(..., description="The new result equals the stored one exactly.")
    weights_changed: bool = Field(
        ..., description="A model or SAE fingerprint differs from the stored one."
    )
    changes: list[dict[str, Any]] = Field(
        ..., description="Each fingerprint that differs: {what, id, stored, current}."
    )
    environment_changes: list[dict[str, Any]] = Field(
        ..., description="Device, dtype, app or library versions that differ."
    )
    differences: list[str] = Field(
        ..., description="JSON paths where the results differ (at most 20)."
    )
    message: str
    result: dict[str, Any] = Field(..., description="The new result (not stored).")
    provenance: dict[str, Any]


# ----------------------------------------------------------------------------- comparisons
class ComparisonCreate(Body):
    title: Title = Field(..., description="A title for the link (1-200 characters).")
    description: StoredText = Field(
        "", max_length=MAX_DESCRIPTION, description="What the comparison shows (plain text)."
    )
    runs: list[str] = Field(
        ...,
        min_length=1,
        max_length=MAX_COMPARISON_RUNS,
        description=f"Ids of saved runs, in display order (1-{MAX_COMPARISON_RUNS}, no repeats).",
    )
    unlisted: bool = Field(False, description="Leave out of GET /api/comparisons.")

    @field_validator("runs")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for run_id in value:
            if run_id in seen:
                raise ValueError(f"run {run_id!r} is listed twice")
            seen.add(run_id)
        return value


class ComparisonSummary(BaseModel):
    id: str
    url: str = Field(..., description="The read-only page of the comparison (share this).")
    title: str
    description: str
    created_at: datetime
    run_ids: list[str] = Field(..., description="The runs, in order.")


class ComparisonPublic(ComparisonSummary):
    runs: list[RunPublic] = Field(..., description="Every run, in order, as GET /api/runs/{id}.")


class ComparisonsPublic(BaseModel):
    data: list[ComparisonSummary]
    count: int = Field(..., description="How many listed comparisons there are, over all pages.")


class ComparisonCreated(BaseModel):
    id: str
    url: str
    created_at: datetime
    run_ids: list[str]
    delete_token: str = Field(
        ..., description="Shown once: send it as X-Delete-Token to DELETE the comparison."
    )


class ComparisonRerun(BaseModel):
    id: str
    identical: bool = Field(..., description="Every run reproduced exactly.")
    runs: list[RerunResult]
