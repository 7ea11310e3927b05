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


def test_serve_answers_at_once_and_builds_the_index_beside_it(world_config, tmp_path):
    import time

    import httpx
    import yaml

    from tests.fixtures_db import free_port

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"the villain plots, line {i}." for i in range(400)))
    spec = yaml.safe_load(world_config.read_text())
    spec["datasets"] = {"tiny": {"path": str(corpus)}}
    spec["indexes"] = [{"model": "base", "sae": "sae", "dataset": "tiny"}]
    config = world_config.parent / "with-index.yaml"  # beside it: relative paths still resolve
    config.write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONASCOPE_")}
    env.pop("DATABASE_URL", None)
    env["PERSONASCOPE_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--config", str(config), "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the server did not answer /")
        while time.time() < deadline:
            found = httpx.get(f"{base}/api/saes/sae/indexes", timeout=5).json()["indexes"]
            if found:
                break
            time.sleep(0.5)
        assert [(i["model"], i["dataset"]) for i in found] == [("base", "tiny")]
        log = (tmp_path / "data" / "index" / "ensure.log").read_text()
        assert "building the index of sae on base / tiny" in log
        assert not (tmp_path / "data" / "index" / "progress.json").exists()  # done: removed
    finally:
        server.terminate()
        server.wait(30)
