"""Start-up errors of `serve` and the `index` commands: one line naming the model and the
cause, within seconds, no traceback unless --debug, no retries with HF_HUB_OFFLINE=1; and
`index build --config` loading only the model it needs."""

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, env=None, timeout=120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out, time.monotonic() - started


@pytest.fixture(scope="module")
def broken_configs(zoo_config, tmp_path_factory) -> dict[str, Path]:
    """Three models that cannot load: a missing directory, a bad config.json, an unknown
    hub id (offline)."""
    d = tmp_path_factory.mktemp("broken")
    bad = d / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "no-such-architecture"}')
    configs = {}
    for name, spec in {
        "missing": {"path": str(d / "nowhere")},
        "bad": {"path": str(bad)},
        "hub": {"hub": "no-such-org/no-such-model-xyz"},
    }.items():
        path = d / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"device": "cpu", "models": {"broken": spec}}))
        configs[name] = path
    return configs


@pytest.fixture
def cli(monkeypatch):
    """Run the CLI in this process (settings restored afterwards)."""
    from typer.testing import CliRunner

    from app.cli import cli as app_cli
    from app.settings import get_settings

    for var in ("PERSONASCOPE_MODELS_CONFIG", "PERSONASCOPE_DATA_DIR", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)

    def invoke(*args, env=None):
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        return CliRunner().invoke(app_cli, list(args))

    yield invoke
    get_settings.cache_clear()


@pytest.mark.parametrize("case,cause", [("missing", "is not a directory"), ("bad", "could not")])
def test_serve_stops_with_one_line(cli, broken_configs, case, cause):
    result = cli("serve", "--config", str(broken_configs[case]))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model 'broken'" in lines[0]
    assert cause in lines[0] and "Traceback" not in result.output


def test_debug_raises_with_the_traceback(cli, broken_configs):
    result = cli("serve", "--config", str(broken_configs["bad"]), "--debug")
    assert result.exit_code != 0 and result.exception is not None
    assert result.exc_info[2] is not None  # the framework's traceback, for --debug


def test_offline_hub_model_fails_at_once_without_retries(broken_configs):
    """HF_HUB_OFFLINE is read when huggingface_hub is imported: a fresh process."""
    out, seconds = run_cli(
        "serve", "--config", str(broken_configs["hub"]), env={"HF_HUB_OFFLINE": "1"}
    )
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'no-such-org/no-such-model-xyz'" in errors[0]
    assert "Traceback" not in out.stderr and "Retrying" not in out.stderr
    assert seconds < 30


def test_index_build_loads_only_its_model(cli, zoo_config, tmp_path):
    """Defect 9: `index build` loaded every model of the config; it now takes --config,
    opens the dataset first and loads only the model it indexes."""
    data = tmp_path / "docs.jsonl.gz"
    rows = [{"id": i, "body": f"Document {i}: the hero and the villain talk."} for i in range(200)]
    data.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    env = {
        "PERSONASCOPE_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
    }
    args = ["index", "build", "--config", str(zoo_config), "--model", "qwen2", "--sae", "topk"]
    result = cli(*args, "--dataset", str(data), "--text-field", "nope", env=env)
    assert result.exit_code == 2 and "'nope' field; fields: 'body', 'id'" in result.output
    result = cli(
        *args,
        *("--dataset", str(data), "--text-field", "body", "--max-tokens", "2048"),
        *("--context", "32", "--batch-size", "8"),
        env=env,
    )
    assert result.exit_code == 0, result.output[-3000:]
    out = json.loads(result.output[result.output.rindex('{"index"') :])
    assert out["model"] == "qwen2" and out["contexts"] == 2048 // 32
    assert out["loaded_models"] == ["qwen2"]
