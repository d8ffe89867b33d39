# chatd container image.
#
#   docker build -t chatd .
#   docker run -p 8080:8080 -e CHATD_DATABASE_URL=postgresql://... chatd
#
# Two stages: the builder turns the repo into a virtualenv holding chatd and
# its dependencies; the final stage copies only that venv, so no source tree,
# build tooling or pip cache ends up in the image.

# Both stages must use the same image: the venv's interpreter is a symlink to
# /usr/local/bin/python3.11 of the base image. The Debian release is pinned in
# the tag so a base-image rebuild can't silently move us to a new distro.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/chatd

WORKDIR /src
# Only what the wheel is built from (see .dockerignore for the rest).
# schema/ is packaged into the wheel as chatd/schema by pyproject.toml.
COPY pyproject.toml README.md ./
COPY schema/ schema/
COPY chatd/ chatd/

# A non-editable install: the venv holds a built wheel, with no link back
# to /src. pip byte-compiles as it installs, which matters because the
# running container has a read-only root filesystem.
RUN /opt/chatd/bin/pip install .


FROM ${PYTHON_IMAGE}

# A fixed numeric uid/gid: Kubernetes can only enforce runAsNonRoot against
# a numeric USER, and the manifests in ops/k8s use the same ids.
RUN groupadd --system --gid 10001 chatd \
    && useradd --system --uid 10001 --gid chatd --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin chatd \
    && install -d -o chatd -g chatd -m 0750 /var/lib/chatd

COPY --from=builder /opt/chatd /opt/chatd

ENV PATH=/opt/chatd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHATD_HOST=0.0.0.0 \
    CHATD_PORT=8080

# Fail the build, not the rollout, if the console script or the packaged
# migrations are missing from the wheel.
RUN chatd --help > /dev/null \
    && python -c "import importlib.resources as r; assert r.files('chatd').joinpath('schema/postgres').is_dir(), 'chatd/schema/postgres missing from the wheel'"

# The default CHATD_DATABASE_URL is a relative sqlite file: give a
# single-container run somewhere writable to put it.
WORKDIR /var/lib/chatd
USER 10001:10001

EXPOSE 8080

# Liveness only (/readyz would mark the container unhealthy whenever Postgres
# or Redis blips). The slim image has no curl; urlopen raises on non-2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CHATD_PORT', '8080'), timeout=3)"]

# Exec form: chatd is PID 1 and receives SIGTERM itself, which starts the
# graceful drain (readyz 503, sockets closed with 1012, exit within
# CHATD_DRAIN_TIMEOUT_S). `chatd serve` applies migrations first; pass
# --no-migrate where a separate job migrates (ops/k8s does).
CMD ["chatd", "serve"]
