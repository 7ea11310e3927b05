"""The deployment files: the example model configs validate, and the Compose file, the
Dockerfile and .dockerignore keep the properties docs/deployment.md promises. (No Docker
engine runs here; `docker compose config` validates the Compose syntax by hand.)"""

import re

import pytest
import yaml

from app.engine.config import load_config
from app.settings import REPO_ROOT

EXAMPLES = REPO_ROOT / "models" / "examples"


def test_gpt2_example_config():
    spec = load_config(EXAMPLES / "gpt2-small-res-jb.yaml").spec
    assert spec.models["gpt2"].hub == "gpt2"
    sae = spec.saes[spec.default_sae]
    assert (sae.release, sae.sae_id, sae.models) == (
        "gpt2-small-res-jb",
        "blocks.8.hook_resid_pre",
        ["gpt2"],
    )


def test_qwen_example_config():
    spec = load_config(EXAMPLES / "qwen-em-lora.yaml").spec
    base, tuned = spec.models["qwen-base"], spec.models["qwen-em"]
    assert base.hub == "Qwen/Qwen2.5-7B-Instruct"
    assert tuned.base == "qwen-base" and tuned.adapter.startswith("ModelOrganismsForEM/")
    sae = spec.saes[spec.default_sae]
    assert sae.release == "qwen2.5-7b-instruct-andyrdt" and set(sae.models) == set(spec.models)


@pytest.mark.parametrize("name", ["gpt2-small-res-jb.yaml", "qwen-em-lora.yaml"])
def test_example_configs_are_quoted_in_the_docs(name):
    """docs/deployment.md shows the exact config: every setting line of the file is in it."""
    docs = (REPO_ROOT / "docs" / "deployment.md").read_text()
    for line in (EXAMPLES / name).read_text().splitlines():
        setting = line.split("#")[0].rstrip()
        if setting.strip():
            assert setting in docs, (name, setting)


def test_sae_releases_exist_in_saelens():
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    for name in ("gpt2-small-res-jb.yaml", "qwen-em-lora.yaml"):
        for sae in load_config(EXAMPLES / name).spec.saes.values():
            assert sae.sae_id in directory[sae.release].saes_map, (sae.release, sae.sae_id)


def test_compose_file():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    postgres, app = services["postgres"], services["app"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert (
        any(v.startswith("pgdata:") for v in postgres["volumes"]) and "pgdata" in compose["volumes"]
    )
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert app["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert services["app2"]["profiles"] == ["replicas"]
    gpu = yaml.safe_load((REPO_ROOT / "docker-compose.gpu.yml").read_text())
    assert gpu["services"]["app"]["build"]["args"]["VARIANT"] == "gpu"


def test_dockerfile():
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG TORCH_SPEC=\"torch==2\.13\.0\"$", text, re.M)
    assert "https://download.pytorch.org/whl/cpu" in text
    assert "ARG VARIANT=cpu" in text and "FROM torch-${VARIANT}" in text
    assert re.search(r"^USER app$", text, re.M)
    cmd = re.search(r"^CMD (.+)$", text, re.M).group(1)
    assert cmd.index("alembic upgrade head") < cmd.index("uvicorn app.main:app")
    assert "--host 0.0.0.0 --port 8000" in cmd
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "test-artifacts", ".git"} <= set(ignored)
