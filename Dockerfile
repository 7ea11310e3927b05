# syntax=docker/dockerfile:1
# PersonaScope: the web app and JSON API.
#
#   CPU (default):    docker build -t personascope .
#   GPU (CUDA 12.6):  docker build --build-arg VARIANT=gpu -t personascope:gpu .
#   another torch:    docker build --build-arg TORCH_SPEC="torch==2.13.0" ...
#
# The GPU variant needs no CUDA base image: the CUDA torch wheels bring the CUDA runtime
# libraries and the NVIDIA container toolkit brings the driver (`docker run --gpus all`, or
# docker-compose.gpu.yml). Start-up runs `alembic upgrade head`, then uvicorn on port 8000.
# See docs/deployment.md.

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data
WORKDIR /app

# torch first, from the index of the variant (the largest layer, cached across code changes).
FROM base AS torch-cpu
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "${TORCH_SPEC}" --index-url "${TORCH_INDEX_URL}"

FROM base AS torch-gpu
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
RUN pip install "${TORCH_SPEC}" --index-url "${TORCH_INDEX_URL}"

FROM torch-${VARIANT} AS app
# The dependencies of pyproject.toml, cached until it changes: an editable install of a
# stub package, replaced by the real code below.
COPY pyproject.toml README.md* ./
RUN mkdir app && touch app/__init__.py \
    && pip install -e . \
    && rm -rf app
COPY --chown=app:app . .

# Model downloads (HuggingFace hub, SAELens releases) and the SQLite file live in /data:
# mount a volume there to keep them across containers.
# The CMD migrates before uvicorn starts, so the app does not migrate a second time.
ENV PERSONASCOPE_DATA_DIR=/data \
    HF_HOME=/data/huggingface \
    FORWARDED_ALLOW_IPS=127.0.0.1 \
    PERSONASCOPE_MIGRATE_ON_START=false
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Migrations first (replicas that start together take turns: see migrations/env.py).
# h11 with a request-header deadline and a header size limit (app/serving.py); a public
# deployment puts a reverse proxy in front (docker-compose.yml, profile "proxy").
CMD ["sh", "-c", "alembic upgrade head && exec uvicorn app.main:app --host 0.0.0.0 --port 8000 --proxy-headers --http app.serving:HeaderTimeoutProtocol --h11-max-incomplete-event-size 32768 --timeout-keep-alive 5"]
