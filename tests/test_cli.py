"""The command line, run as a user runs it: `python -m app ...` in a subprocess."""

import json
import os
import subprocess
import sys

from app.settings import REPO_ROOT


def run_cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_the_commands():
    out = run_cli("--help", env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    for command in ("serve", "organism", "index"):
        assert command in out.stdout


def test_index_build_then_list(world_config, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONASCOPE_")}
    env.pop("DATABASE_URL", None)
    env.update(
        PERSONASCOPE_MODELS_CONFIG=str(world_config),
        PERSONASCOPE_DATA_DIR=str(tmp_path),
    )
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"a villain speaks, line {i}." for i in range(40)))
    built = run_cli(
        "index",
        "build",
        "--model",
        "base",
        "--sae",
        "sae",
        "--dataset",
        str(corpus),
        "--context",
        "16",
        "--top-k",
        "5",
        env=env,
    )
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout.strip().splitlines()[-1])
    assert summary["model"] == "base" and summary["sae"] == "sae" and summary["contexts"] > 0
    listed = run_cli("index", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert [(r["model"], r["sae"], r["id"]) for r in rows] == [("base", "sae", summary["index"])]
    bad = run_cli(
        "index", "build", "--model", "nope", "--sae", "sae", "--dataset", str(corpus), env=env
    )
    assert bad.returncode == 2 and "unknown model 'nope'" in bad.stderr
