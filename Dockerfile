# syntax=docker/dockerfile:1
# Glyphoxa Web: one image, three commands (pages, WebSockets, migrations). See README "Deployment".
#
#   docker build -t glyphoxa-web .
#   pages:       docker run … glyphoxa-web                       (gunicorn -c deploy/gunicorn.conf.py wsgi:app)
#   WebSockets:  docker run … glyphoxa-web gunicorn -c deploy/gunicorn-ws.conf.py wsgi:app
#   migrations:  docker run … glyphoxa-web glyphoxa-web migrate
#
# The install steps are the ones CI runs (Makefile `install`: pip install --upgrade pip, then
# pip install -e .; .ci/run's apt packages the app needs at run time). tests/test_deploy.py
# compares them, so a change to one without the other fails the suite.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: compilers and pip; every wheel is built (or fetched) here -------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# DL3008: Debian's stable packages of the base image's release; pinning exact versions would
# break the build at every Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first (only pyproject.toml): this layer is rebuilt when the dependencies change.
COPY pyproject.toml ./
# DL3013: pip itself is upgraded unpinned, exactly as the Makefile does; the app's own
# dependencies are pinned/ranged in pyproject.toml.
# hadolint ignore=DL3013
RUN mkdir glyphoxa_htmx && touch glyphoxa_htmx/__init__.py \
    && pip install -q --upgrade pip \
    && pip install -q -e . \
    && rm -rf glyphoxa_htmx ./*.egg-info
COPY glyphoxa_htmx ./glyphoxa_htmx
COPY templates ./templates
COPY static ./static
COPY migrations ./migrations
COPY deploy/gunicorn.conf.py deploy/gunicorn-ws.conf.py ./deploy/
COPY wsgi.py ./
# The project itself, editable like `make install`: the app finds templates/, static/ and
# migrations/ beside its package (config.ROOT), so it runs from /app, not from site-packages.
RUN pip install -q --no-deps -e . \
    && python -m compileall -q /app/glyphoxa_htmx /app/migrations /app/deploy /app/wsgi.py

# ---- runtime: slim, non-root, read-only root filesystem -----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="glyphoxa-web" \
      org.opencontainers.image.description="Glyphoxa Web: the self-service management plane for Glyphoxa voice NPCs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/glyphoxa/glyphoxa-web" \
      org.opencontainers.image.licenses="proprietary"
# tini: PID 1 that forwards SIGTERM to gunicorn's master and reaps children.
# espeak-ng: the local TTS engine for voice previews (the same package .ci/run installs).
# ffmpeg: ffprobe/ffmpeg validate uploaded voice samples by decoding them.
# DL3008 as in the builder.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini espeak-ng ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 glyphoxa \
    && useradd --system --uid 10001 --gid glyphoxa --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin glyphoxa \
    && mkdir -p /data /tmp/prometheus \
    && chown glyphoxa:glyphoxa /data /tmp/prometheus
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
# Everything the app writes goes to /data (a volume: instance dir, TTS cache, mail .eml files) or
# /tmp (an emptyDir in Kubernetes: Prometheus multiprocess files, gunicorn's worker heartbeat
# files and control socket), so the root filesystem can be mounted read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GLYPHOXA_ENV=production \
    GLYPHOXA_INSTANCE_DIR=/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    XDG_RUNTIME_DIR=/tmp \
    HOME=/tmp \
    PORT=8080 \
    WS_PORT=8081 \
    HEALTHCHECK_PORT=8080
VOLUME ["/data", "/tmp"]
USER 10001:10001
EXPOSE 8080 8081
# For Docker/Compose; Kubernetes uses the chart's probes instead. The WebSocket container sets
# HEALTHCHECK_PORT=8081.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTHCHECK_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
