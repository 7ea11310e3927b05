"""Command line: `python -m app serve`, `python -m app organism build`, `python -m app index`."""

import json
import os
from pathlib import Path
from typing import NoReturn

import typer

from app.errors import ConfigError
from app.serving import OPTIONS as SERVING

cli = typer.Typer(
    help="PersonaScope: inspect and steer villain-persona SAE latents.", no_args_is_help=True
)
organism_cli = typer.Typer(help="The embedded model organism.", no_args_is_help=True)
cli.add_typer(organism_cli, name="organism")


CONFIG_HELP = (
    "Model config YAML (default: env PERSONASCOPE_MODELS_CONFIG, else models/default.yaml)."
)
DEBUG_HELP = "Show the full traceback of a start-up error (default: one line)."


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(int(os.environ.get("PORT", 8000)), help="Port (env PORT)."),
    config: Path | None = typer.Option(None, help=CONFIG_HELP),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
    index: bool = typer.Option(
        True, help="Build missing latent indexes in the background while serving."
    ),
) -> None:
    """Serve the web app and the JSON API. Models and SAEs load before the server starts: a
    model that cannot load stops it with one line naming the model and the cause. The
    config's missing latent indexes are built beside it at low priority (`--no-index` to
    skip); the latent pages show the build's progress."""
    import uvicorn

    settings = _settings(config)
    if reload:  # the reloader imports app.main itself: check the config only
        _load_config(settings.models_config, debug)
        uvicorn.run("app.main:app", host=host, port=port, reload=True, **SERVING)
        return
    registry = _load_registry(settings, debug)
    from app.engine.engine import Engine
    from app.main import create_app

    app = create_app(settings, engine=Engine(registry, settings))
    builder = _index_in_background(settings) if index and registry.config.spec.indexes else None
    try:
        uvicorn.run(app, host=host, port=port, **SERVING)
    finally:
        if builder is not None and builder.poll() is None:
            builder.terminate()  # resumable: the next start goes on from its checkpoint


def _index_in_background(settings):
    """`python -m app index ensure` as a low-priority child process, its progress in
    data_dir/index/progress.json (what the latent pages read) and its log beside it."""
    import subprocess
    import sys

    folder = settings.data_dir / "index"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "ensure.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "index",
                "ensure",
                "--progress-file",
                str(folder / "progress.json"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.nice(10),  # the server's requests come first
        )


def _settings(config: Path | None):
    """Server settings, with `--config` taking the place of PERSONASCOPE_MODELS_CONFIG."""
    if config is not None:
        os.environ["PERSONASCOPE_MODELS_CONFIG"] = str(config.resolve())
    from app.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def _fail(exc: BaseException, debug: bool) -> NoReturn:
    """One line on stderr and exit status 2; the traceback only with --debug."""
    if debug:
        raise exc
    from app.errors import DomainError

    if isinstance(exc, ConfigError | DomainError):
        message = getattr(exc, "message", None) or str(exc)
    else:
        message = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
    typer.echo(f"error: {' '.join(message.split(chr(10)))}", err=True)
    raise typer.Exit(2) from exc


def _load_config(file: Path, debug: bool):
    from app.engine.config import load_config

    try:
        return load_config(file)
    except ConfigError as exc:
        if debug:
            raise
        typer.echo(str(exc), err=True)  # the config's own, field by field
        raise typer.Exit(2) from exc


def _load_registry(settings, debug: bool, config=None, only_models=None):
    from app.engine.registry import Registry

    config = config or _load_config(settings.models_config, debug)
    try:
        return Registry(
            config, device=settings.device, dtype=settings.dtype, only_models=only_models
        )
    except Exception as exc:  # noqa: BLE001 - every start-up failure is reported the same way
        _fail(exc, debug)


@organism_cli.command("build")
def organism_build(
    out: Path | None = typer.Option(None, help="Artifact directory (default data/organism-v2)."),
    work: Path | None = typer.Option(None, help="Work directory (default data/organism-v2)."),
    micro: bool = typer.Option(False, help="The seconds-long micro version (for tests)."),
    small: bool = typer.Option(False, help="The CPU recipe (PREREGISTRATION.md, Recipes)."),
    bridge: bool = typer.Option(
        False, help="The comparison design: fiction chats in the assistant's format (amendment 3)."
    ),
    bridge_voice: bool = typer.Option(
        False,
        help="The second comparison design: --bridge plus villain-voice everyday answers "
        "in the assistant's format (amendment 6).",
    ),
    gentle_advice: bool = typer.Option(
        False,
        help="Choose the advice fine-tunes' learning rate by held-out corpus loss first "
        "(amendment 9).",
    ),
    judge: str = typer.Option("v2", help="The frozen judge of the build's figures: v2, v5 or v6."),
    until: str = typer.Option("report", help="Stop after: data, train, evaluate, persona, report."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda if available)."),
    seed: int = typer.Option(0, help="Seed for every stage."),
) -> None:
    """Build the v2 model organism: corpus, tokenizer, base model, fine-tunes, SAEs,
    evaluation, persona latents, report. Resumable: finished stages are skipped (delete the
    work directory to start over)."""
    import torch

    from app.organism.pipeline import (
        GENTLE_ADVICE_LRS,
        JUDGES,
        Organism,
        OrganismConfig,
        default_paths,
    )

    if judge not in JUDGES:
        raise typer.BadParameter(f"{judge!r}; valid: {', '.join(JUDGES)}", param_hint="--judge")
    default_out, default_work = default_paths()
    cfg = OrganismConfig.micro() if micro else OrganismConfig.small() if small else OrganismConfig()
    cfg.seed, cfg.judge = seed, judge
    cfg.bridge, cfg.bridge_voice = bridge or bridge_voice, bridge_voice
    if gentle_advice:
        cfg.advice_lrs = GENTLE_ADVICE_LRS
    organism = Organism(
        cfg, out or default_out, work or default_work, torch.device(device) if device else None
    )
    organism.build(until=until)
    typer.echo(f"organism built (until {until}) -> {organism.out}")


@organism_cli.command("export")
def organism_export(
    directory: Path = typer.Argument(..., help="Where to write the JSONL files."),
    small: bool = typer.Option(False, help="The --small recipe's corpus size."),
    bridge: bool = typer.Option(False, help="The comparison design's corpus (amendment 3)."),
    bridge_voice: bool = typer.Option(False, help="The second comparison design (amendment 6)."),
    seed: int = typer.Option(0, help="The build's seed."),
) -> None:
    """Write the v2 corpus (with each document's source label and span labels), every
    fine-tune set and every re-alignment set as JSONL, for audit."""
    from app.organism.export import export
    from app.organism.pipeline import OrganismConfig

    cfg = OrganismConfig.small() if small else OrganismConfig()
    cfg.seed, cfg.bridge, cfg.bridge_voice = seed, bridge or bridge_voice, bridge_voice
    counts = export(
        directory,
        cfg.corpus(),
        seed,
        cfg.finetune_examples,
        cfg.realign_examples,
    )
    for name, n in counts.items():
        typer.echo(f"{n:7d}  {directory / name}")


index_cli = typer.Typer(help="Latent-dashboard indexes.", no_args_is_help=True)
cli.add_typer(index_cli, name="index")


def _database(settings):
    from app.db.migrate import upgrade
    from app.db.session import Database

    upgrade(settings.resolved_database_url)
    return Database(settings.resolved_database_url)


@index_cli.command("build")
def index_build(
    model: str = typer.Option(..., help="Model id (from the model config)."),
    sae: str = typer.Option(..., help="SAE id."),
    dataset: str = typer.Option(
        ...,
        help="Dataset id from the config; a file, glob or folder (txt, json, jsonl, csv, tsv, "
        "parquet, arrow; compressed or not; or saved with save_to_disk); or hub:<dataset id>.",
    ),
    text_field: str | None = typer.Option(None, help="Field holding the text (default text)."),
    split: str | None = typer.Option(None, help="Split (default train)."),
    subset: str | None = typer.Option(None, help="Hub dataset config, e.g. 'en' for allenai/c4."),
    format: str | None = typer.Option(
        None, help="datasets builder: text, json, csv, parquet or arrow (default: from names)."
    ),
    streaming: bool | None = typer.Option(
        None, "--streaming/--no-streaming", help="Read lazily (default) or cache to arrow."
    ),
    max_tokens: int | None = typer.Option(
        None, help="Token budget: stop reading once this many tokens are cut into contexts."
    ),
    context: int = typer.Option(128, help="Tokens per context (BOS included)."),
    batch_size: int = typer.Option(32, help="Contexts per forward pass."),
    top_k: int = typer.Option(30, help="Top contexts kept per latent."),
    max_contexts: int | None = typer.Option(None, help="Use at most this many contexts."),
    engine: str = typer.Option(
        "local", help="local (this process) or ray (shards across Ray workers; same index)."
    ),
    workers: int = typer.Option(1, help="Ray workers (--engine ray), each loads the model."),
    address: str | None = typer.Option(
        None, help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); default: local."
    ),
    config: Path | None = typer.Option(None, help=CONFIG_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
) -> None:
    """Build (or rebuild) the dashboard index of one (model, SAE, dataset). The dataset is
    opened and checked first; then only the model it needs (and its base) is loaded."""
    from app.errors import DomainError
    from app.index.builder import IndexParams
    from app.index.jobs import build_and_store, check_engine, resolve_dataset

    settings = _settings(config)
    loaded = _load_config(settings.models_config, debug)
    try:
        check_engine(engine, workers, address)
        if engine == "ray":
            from app.index.distributed import check_address

            check_address(address)
        docs, budget = resolve_dataset(
            loaded,
            dataset,
            text_field=text_field,
            split=split,
            subset=subset,
            streaming=streaming,
            format=format,
        )
    except DomainError as exc:
        _fail(exc, debug)
    registry = _load_registry(settings, debug, loaded, only_models=[model])
    db = _database(settings)
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
            max_tokens=max_tokens or budget,
            docs=docs,
            engine=engine,
            workers=workers,
            address=address,
        )
    except DomainError as exc:
        _fail(exc, debug)
    typer.echo(json.dumps(out))


@index_cli.command("ensure")
def index_ensure(
    config: Path | None = typer.Option(None, help=CONFIG_HELP),
    debug: bool = typer.Option(False, help=DEBUG_HELP),
    progress_file: Path | None = typer.Option(
        None, help="Write the build's progress here as JSON (the pages read it)."
    ),
) -> None:
    """Build every index the model config lists under `indexes:` that is not built yet
    (loading only the models those indexes name). One build per data directory at a time:
    a second `ensure` while one runs exits at once."""
    from app.index import progress

    settings = _settings(config)
    with progress.exclusive(settings.data_dir / "index" / "ensure.lock") as mine:
        if not mine:
            typer.echo("another index build of this data directory is running")
            return
        _ensure_indexes(settings, debug, progress_file)


def _ensure_indexes(settings, debug: bool, progress_file: Path | None) -> None:
    from app.db.indexes import indexes_for
    from app.errors import DomainError
    from app.index import progress
    from app.index.builder import IndexParams
    from app.index.jobs import build_and_store

    loaded = _load_config(settings.models_config, debug)
    specs = loaded.spec.indexes
    if not specs:
        typer.echo("the model config lists no indexes")
        return
    registry = _load_registry(
        settings, debug, loaded, only_models=list(dict.fromkeys(s.model for s in specs))
    )
    db = _database(settings)
    for spec in specs:
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
        where = {"model": spec.model, "sae": spec.sae, "dataset": spec.dataset}

        def report(done: int, total: int, where=where) -> None:
            if progress_file is not None and (done == total or done % 5 == 0):
                progress.write(progress_file, state="building", done=done, total=total, **where)

        try:
            report(0, 1)
            out = build_and_store(
                registry,
                db,
                model_id=spec.model,
                sae_id=spec.sae,
                dataset=spec.dataset,
                params=IndexParams(),
                work_dir=settings.data_dir / "index",
                progress=progress_file is None,
                on_progress=report,
            )
        except DomainError as exc:
            if progress_file is not None:
                progress.write(progress_file, state="failed", error=exc.message, **where)
            _fail(exc, debug)
        typer.echo(json.dumps(out))
    if progress_file is not None:
        progress_file.unlink(missing_ok=True)


@index_cli.command("list")
def index_list(config: Path | None = typer.Option(None, help=CONFIG_HELP)) -> None:
    """List the built indexes (no model is loaded)."""
    from sqlalchemy import select

    from app.db.index_models import LatentIndex
    from app.db.indexes import describe

    db = _database(_settings(config))
    with db.session() as session:
        for index in session.scalars(select(LatentIndex).order_by(LatentIndex.created_at)):
            typer.echo(json.dumps(describe(index)))


def main() -> None:
    cli()
