"""Command line: `python -m app serve`, `python -m app organism build`, `python -m app index`."""

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


def main() -> None:
    cli()
