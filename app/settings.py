"""Server settings: one pydantic-settings class, overridden by environment variables.

Model and SAE definitions live in a YAML model config (see `app.engine.config`), not here.
"""

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERSONASCOPE_", extra="ignore")

    models_config: Path = Field(
        default=REPO_ROOT / "models" / "default.yaml",
        description="YAML file that lists the hosted models, adapters, SAEs and question sets.",
    )
    data_dir: Path = Field(default=REPO_ROOT / "data", description="Git-ignored state directory.")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PERSONASCOPE_DATABASE_URL"),
        description="SQLAlchemy URL; default is a SQLite file under data_dir. Postgres: "
        "postgresql+psycopg://user:password@host:5432/db (postgresql:// is read as psycopg 3).",
    )
    migrate_on_start: bool = Field(
        default=True, description="Run `alembic upgrade head` when the app starts."
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base of the share links the API hands out (e.g. https://scope.example.org); "
        "default: the URL the request came in on.",
    )
    device: str | None = Field(default=None, description="Overrides the model config's device.")
    dtype: str | None = Field(default=None, description="Overrides the model config's dtype.")

    # Request limits (documented in the API docs; exceeding one is a 422, never a 500).
    max_prompt_tokens: int = 512
    max_new_tokens: int = 256
    max_alphas: int = 16
    max_abs_alpha: float = 1000.0
    max_top_k: int = 100
    max_prompts: int = 256
    max_samples: int = 64
    max_body_bytes: int = 1_000_000
    max_models: int = Field(default=8, description="Models one request may name.")

    # Model work: one worker thread per device; requests beyond this many waiting get a 503.
    # Waiting steering requests of one model run together as one batch, so the real bound
    # on work is queue_cost_budget below.
    queue_size: int = 64
    retry_after_s: int = 5
    # A batch that starts with room to spare waits this long for more requests first, so
    # users who click together share one generation (a lone request pays it once).
    batch_window_ms: float = Field(default=15.0, ge=0.0, le=1000.0)
    # Work is admitted by its cost in token positions: rows x (prompt + new tokens) x models.
    max_request_cost: int = Field(
        default=250_000, description="Token positions one request may cost (else 422)."
    )
    queue_cost_budget: int = Field(
        default=1_000_000,
        description="Token positions waiting or running on the device at once (else 503).",
    )
    # Reruns recompute for anyone who has a link: a client may start this many per minute.
    reruns_per_minute: int = 6
    # Results the server computed are kept this long (and up to this many bytes), so saving
    # a run just shown stores it without computing it again.
    recent_results_ttl_s: float = 900.0
    recent_results_bytes: int = 64_000_000

    # When set, writes to labels, notes and pins need it (header X-Edit-Token).
    edit_token: str | None = None

    # LLM judge (any OpenAI-compatible chat-completions endpoint).
    judge_base_url: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = None
    judge_timeout_s: float = 60.0

    @field_validator(
        "queue_size",
        "max_prompt_tokens",
        "max_new_tokens",
        "max_alphas",
        "max_models",
        "max_request_cost",
        "queue_cost_budget",
        "reruns_per_minute",
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite:", "postgres:", "postgresql:", "postgresql+")):
            raise ValueError("use sqlite:///path or postgresql+psycopg://user:password@host/db")
        return value or None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'personascope.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
