"""Latent dashboards: one latent's page, the latent list, indexes, and search by inference."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.schemas.fields import MAX_OFFSET, Body, Offset

LatentSort = Literal["density", "max_activation", "label", "latent"]
LATENT_SORTS = {
    "max_activation": "max activation",
    "density": "density",
    "latent": "index",
    "label": "label",
}
Order = Literal["asc", "desc"]


class IndexPublic(BaseModel):
    id: str
    model: str
    sae: str
    dataset: str
    n_contexts: int
    n_tokens: int
    d_sae: int
    params: dict[str, Any]
    model_fingerprint: str
    sae_fingerprint: str
    build_seconds: float
    created_at: str


class FeatureRef(BaseModel):
    sae: str = Field(..., description="The hosted SAE.")
    latent: int
    neuronpedia_url: str | None = Field(
        ..., description="The feature on Neuronpedia, when SAELens' registry names it there."
    )


class IndexesPublic(BaseModel):
    sae: str
    indexes: list[IndexPublic]


class Snippet(BaseModel):
    tokens: list[str]
    token_ids: list[int] | None = None
    values: list[float] = Field(..., description="The latent's value on each token.")
    max_value: float
    source: str
    context: int


class BinExample(BaseModel):
    tokens: list[str]
    values: list[float] | None
    value: float
    position: int = Field(..., description="The example token's position in `tokens`.")
    source: str
    context: int


class ActivationBin(BaseModel):
    low: float
    high: float
    fraction: float = Field(..., description="Share of the latent's activations in [low, high).")
    examples: list[BinExample]


class Neighbor(BaseModel):
    latent: int
    cosine: float
    label: str = ""


class IndexRef(BaseModel):
    model: str
    dataset: str


class LatentDashboard(BaseModel):
    sae: str
    latent: int
    model: str = Field(..., description="The model whose index is shown.")
    dataset: str
    index: str
    density: float
    n_active: int
    max_activation: float
    mean_activation: float
    mean_active: float
    top_snippets: list[Snippet]
    bins: list[ActivationBin]
    histogram: dict[str, Any] = Field(
        ...,
        description="Nonzero activations on a log2 grid: {scale, per_octave, low, high, counts}.",
    )
    logits: dict[str, list[dict[str, Any]]] = Field(
        ..., description="Tokens the decoder direction promotes (`positive`) and suppresses."
    )
    neighbors: list[Neighbor] = Field(..., description="Decoder directions closest by cosine.")
    annotation: dict[str, Any]
    other_indexes: list[IndexRef] = Field(..., description="Other indexes of this SAE.")


class LatentRow(BaseModel):
    latent: int
    density: float
    max_activation: float
    mean_active: float
    top_tokens: list[str]
    label: str
    pinned: bool


class LatentList(BaseModel):
    index: IndexPublic
    count: int = Field(..., description="Latents matching the filters, over all pages.")
    data: list[LatentRow]


class _LatentFilter(BaseModel):
    model: str | None = Field(None, description="Which model's index (when several).")
    dataset: str | None = Field(None, description="Which dataset's index.")
    sort: LatentSort = "max_activation"
    order: Order = "desc"
    q: str | None = Field(None, max_length=200, description="Text in the label or promoted tokens.")
    min_density: float = Field(0.0, ge=0, le=1)
    max_density: float = Field(1.0, ge=0, le=1)
    pinned: bool = False


class LatentListQuery(_LatentFilter):
    """Query parameters of GET /api/saes/{sae}/latents."""

    offset: Offset = 0
    limit: int = Field(50, ge=1, le=200)


class LatentsPage(_LatentFilter):
    """The latent list page: the same filters by page number, or a text to search."""

    sae: str | None = None
    page: int = Field(1, ge=1, le=MAX_OFFSET // 200, description="Page number.")
    text: str = Field("", max_length=20_000, description="Search by inference.")

    def query(self, per_page: int) -> LatentListQuery:
        fields = self.model_dump(include=set(_LatentFilter.model_fields))
        return LatentListQuery(**fields, offset=(self.page - 1) * per_page, limit=per_page)


class SearchRequest(Body):
    sae: str = Field(..., description="SAE id.")
    model: str | None = Field(None, description="Model to run (default: the SAE's first).")
    text: str = Field(..., min_length=1, description="Text to run (at most 512 tokens).")
    top_n: int = Field(20, ge=1, le=200, description="How many latents to return.")
    sort: Literal["max", "sum"] = Field("max", description="Rank by max or sum over tokens.")
    min_density: float = Field(0.0, ge=0, le=1, description="Density filter (needs an index).")
    max_density: float = Field(1.0, ge=0, le=1, description="Density filter (needs an index).")


class SearchHit(BaseModel):
    latent: int
    max: float
    sum: float
    density: float | None
    values: list[float] = Field(..., description="The latent's value on each token.")
    label: str


class SearchResult(BaseModel):
    sae: str
    model: str
    tokens: list[str]
    index: IndexPublic | None = Field(..., description="The index the densities come from.")
    results: list[SearchHit]
