"""Command line: `python -m app serve`, `python -m app organism build`, `python -m app index build`."""

import os
from pathlib import Path

import typer

from app.errors import ConfigError

cli = typer.Typer(help="PersonaScope: inspect and steer villain-persona SAE latents.",
                  no_args_is_help=True)
organism_cli = typer.Typer(help="The embedded model organism.", no_args_is_help=True)
cli.add_typer(organism_cli, name="organism")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(int(os.environ.get("PORT", 8000)), help="Port (env PORT)."),
    config: Path | None = typer.Option(None, help="Model config YAML (env PERSONASCOPE_MODELS_CONFIG)."),
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


def main() -> None:
    cli()
