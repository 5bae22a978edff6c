# syntax=docker/dockerfile:1
# Posewheel images, one Dockerfile, two targets:
#
#   docker build --target serve -t posewheel-serve .     # API server: ONNX Runtime, no torch (~pyproject `serve`)
#   docker build --target train -t posewheel-train .     # training: CPU torch by default
#   docker build --target train --build-arg TORCH_VARIANT=cu128 -t posewheel-train:cu128 .   # CUDA torch
#
# Settings come from the environment (POSEWHEEL_*, see docs/architecture.md); models/ and var/ are
# volumes. Both images run as the unprivileged user `posewheel` (uid 1001, the same uid as the
# official Label Studio image, so the two can share the image-store volume).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# base: Python, the unprivileged user and the project's folders
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POSEWHEEL_ROOT=/app \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --gid 1001 posewheel \
    && useradd --uid 1001 --gid posewheel --create-home --shell /usr/sbin/nologin posewheel \
    && mkdir -p /app/models /app/var/images /app/data /app/metrics /app/wandb \
    && chown -R posewheel:posewheel /app
WORKDIR /app

# ---------------------------------------------------------------------------------------------
# serve-build: install pyproject's `serve` extra (the same list scripts/make_serve_venv.sh installs
# for the test suite's serving-only virtualenv) into /opt/venv. Only the packages the server
# imports are copied: training/ and flywheel/ are absent, and so is torch.
FROM base AS serve-build
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY posewheel/ posewheel/
COPY labeling/ labeling/
COPY serving/ serving/
# The versions are pinned where they belong, in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[serve]" \
    && pip check \
    && if python -c "import torch" 2>/dev/null; then echo "torch must not be in the serving image" >&2; exit 1; fi

# ---------------------------------------------------------------------------------------------
# serve: the API server, from the promoted artifact under /app/models/production
FROM base AS serve
COPY --from=serve-build /opt/venv /opt/venv
COPY --chown=posewheel:posewheel params.yaml pyproject.toml ./
USER 1001:1001
ENV POSEWHEEL_HOST=0.0.0.0 \
    POSEWHEEL_PORT=8000
VOLUME ["/app/models", "/app/var"]
EXPOSE 8000
# Ready means a model is loaded and answering; the probe uses Python (the slim image has no curl).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('POSEWHEEL_PORT', '8000')}/readyz\", timeout=4)"]
CMD ["posewheel", "serve"]

# ---------------------------------------------------------------------------------------------
# train: Lightning training, evaluation, export and the DVC pipeline. TORCH_VARIANT picks the
# PyTorch wheel index: cpu (default, small) or a CUDA build such as cu128 for GPU machines.
FROM base AS train
ARG TORCH_VARIANT=cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# DVC and the model card's git commit need git; Debian's security updates move its version, so it is not pinned.
# A checkout mounted at /app belongs to the host's user, not uid 1001: git (and so DVC) must be told it is safe.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory /app
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
COPY pyproject.toml README.md ./
COPY posewheel/ posewheel/
COPY training/ training/
COPY labeling/ labeling/
COPY serving/ serving/
COPY flywheel/ flywheel/
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[train,serve]" && pip check
COPY --chown=posewheel:posewheel params.yaml dvc.yaml ./
USER 1001:1001
# W&B: offline runs under /app/wandb unless WANDB_API_KEY is set (training/run_logging.py decides).
VOLUME ["/app/models", "/app/var", "/app/data", "/app/metrics", "/app/wandb"]
CMD ["posewheel", "--help"]
