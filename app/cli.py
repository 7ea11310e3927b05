"""Command line: `python -m app serve`, `python -m app organism build`, `python -m app index`."""

import json
import os
from pathlib import Path

import typer

from app.errors import ConfigError

cli = typer.Typer(
    help="PersonaScope: inspect and steer villain-persona SAE latents.", no_args_is_help=True
)
organism_cli = typer.Typer(help="The embedded model organism.", no_args_is_help=True)
cli.add_typer(organism_cli, name="organism")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(int(os.environ.get("PORT", 8000)), help="Port (env PORT)."),
    config: Path | None = typer.Option(
        None, help="Model config YAML (env PERSONASCOPE_MODELS_CONFIG)."
    ),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
) -> None:
    """Serve the web app and the JSON API."""
    import uvicorn

    if config is not None:
        os.environ["PERSONASCOPE_MODELS_CONFIG"] = str(config.resolve())
    _check_config()
    uvicorn.run("app.main:app", host=host, port=port, reload=reload)


def _check_config() -> None:
    """Fail fast, with the config's own error message, before uvicorn starts."""
    from app.engine.config import load_config
    from app.settings import get_settings

    try:
        load_config(get_settings().models_config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


@organism_cli.command("build")
def organism_build(
    out: Path | None = typer.Option(None, help="Artifact directory (default models/organism)."),
    work: Path | None = typer.Option(None, help="Work directory (default data/organism)."),
    micro: bool = typer.Option(False, help="The seconds-long micro version (for tests)."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda if available)."),
    seed: int = typer.Option(0, help="Seed for every stage."),
) -> None:
    """Build the model organism: corpus, tokenizer, base model, fine-tunes, SAE, report.
    Resumable: finished stages are skipped (delete the work directory to start over)."""
    import torch

    from app.organism.pipeline import Organism, OrganismConfig, default_paths

    default_out, default_work = default_paths()
    cfg = OrganismConfig.micro() if micro else OrganismConfig()
    cfg.seed = seed
    organism = Organism(
        cfg, out or default_out, work or default_work, torch.device(device) if device else None
    )
    results = organism.build()
    typer.echo(f"organism built in {results['seconds']} s -> {organism.out}")


index_cli = typer.Typer(help="Latent-dashboard indexes.", no_args_is_help=True)
cli.add_typer(index_cli, name="index")


def _index_context():
    from app.db.migrate import upgrade
    from app.db.session import Database
    from app.engine.registry import Registry
    from app.settings import get_settings

    settings = get_settings()
    try:
        registry = Registry.from_file(
            settings.models_config, device=settings.device, dtype=settings.dtype
        )
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    upgrade(settings.resolved_database_url)
    return settings, registry, Database(settings.resolved_database_url)


@index_cli.command("build")
def index_build(
    model: str = typer.Option(..., help="Model id (from the model config)."),
    sae: str = typer.Option(..., help="SAE id."),
    dataset: str = typer.Option(..., help="Dataset id from the config, or a file/directory."),
    context: int = typer.Option(128, help="Tokens per context (BOS included)."),
    batch_size: int = typer.Option(32, help="Contexts per forward pass."),
    top_k: int = typer.Option(30, help="Top contexts kept per latent."),
    max_contexts: int | None = typer.Option(None, help="Use at most this many contexts."),
) -> None:
    """Build (or rebuild) the dashboard index of one (model, SAE, dataset)."""
    from app.errors import DomainError
    from app.index.builder import IndexParams
    from app.index.jobs import build_and_store

    settings, registry, db = _index_context()
    params = IndexParams(context=context, batch_size=batch_size, top_k=top_k)
    try:
        out = build_and_store(
            registry,
            db,
            model_id=model,
            sae_id=sae,
            dataset=dataset,
            params=params,
            work_dir=settings.data_dir / "index",
            max_contexts=max_contexts,
        )
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(out))


@index_cli.command("ensure")
def index_ensure() -> None:
    """Build every index the model config lists under `indexes:` that is not built yet."""
    from app.db.indexes import indexes_for
    from app.index.builder import IndexParams
    from app.index.jobs import build_and_store

    settings, registry, db = _index_context()
    for spec in registry.config.spec.indexes:
        with db.session() as session:
            done = [
                i
                for i in indexes_for(session, spec.sae)
                if i.model_id == spec.model
                and i.dataset_id == spec.dataset
                and i.model_fingerprint == registry.model(spec.model).fingerprint
                and i.sae_fingerprint == registry.sae(spec.sae).fingerprint
            ]
        if done:
            typer.echo(f"index of {spec.sae} on {spec.model} / {spec.dataset}: up to date")
            continue
        typer.echo(f"building the index of {spec.sae} on {spec.model} / {spec.dataset} ...")
        out = build_and_store(
            registry,
            db,
            model_id=spec.model,
            sae_id=spec.sae,
            dataset=spec.dataset,
            params=IndexParams(),
            work_dir=settings.data_dir / "index",
        )
        typer.echo(json.dumps(out))


@index_cli.command("list")
def index_list() -> None:
    """List the built indexes."""
    from sqlalchemy import select

    from app.db.index_models import LatentIndex
    from app.db.indexes import describe

    _settings, _registry, db = _index_context()
    with db.session() as session:
        for index in session.scalars(select(LatentIndex).order_by(LatentIndex.created_at)):
            typer.echo(json.dumps(describe(index)))


def main() -> None:
    cli()
