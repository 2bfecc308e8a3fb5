# syntax=docker/dockerfile:1
# One image, two entry points:
#   docker run IMAGE operator ...   (the Kubernetes operator; what the Helm chart runs)
#   docker run IMAGE worker ...     (the worker runtime; base for your worker image,
#                                    see examples/Dockerfile.worker)
# Build: docker build -t queueworker:0.1.0 .
# Without a registry: scripts/build-image.sh (a base from Debian packages, docs/image.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel and every dependency in a virtualenv -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Set only where pip needs them (a private index, a TLS-inspecting proxy's CA);
# build arguments of this stage stay out of the runtime image.
ARG PIP_INDEX_URL
ARG PIP_CERT
RUN python -m venv /opt/queueworker
WORKDIR /src
# Only what the wheel needs (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY worker ./worker
# The gpu extra (nvidia-ml-py) is small and only loads NVML when a GPU is there; the api
# extra (FastAPI, uvicorn, PyJWT) serves `queueworker api` (the chart's optional API).
RUN /opt/queueworker/bin/pip install ".[gpu,api]" \
 && /opt/queueworker/bin/queueworker --help >/dev/null

# --- runtime: slim Python, the virtualenv, a non-root user -------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="queueworker" \
      org.opencontainers.image.description="Kubernetes operator and worker runtime for Redis queue workers" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric UID/GID: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --gid 10001 queueworker \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin queueworker \
 && mkdir /app && chown 10001:10001 /app
COPY --from=build /opt/queueworker /opt/queueworker
ENV PATH=/opt/queueworker/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
# Operator: metrics 9090, liveness 8080 (the chart's defaults).
EXPOSE 9090 8080
ENTRYPOINT ["queueworker"]
CMD ["--help"]
