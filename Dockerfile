# syntax=docker/dockerfile:1
# Container image for the extender: `extender serve` (gunicorn gthread + Flask) as a non-root user.
#
#   docker build -t ghcr.io/extender-dev/extender:0.1.0 .
#   docker run --rm -p 8888:8888 ghcr.io/extender-dev/extender:0.1.0
#
# tests/test_dockerfile.py runs this file's build-stage RUN and the runtime ENTRYPOINT/CMD without a
# Docker engine, so keep the RUN a plain shell command and ENTRYPOINT/CMD in exec (JSON) form.

# ---- build: install the package and its dependencies into a self-contained venv ----
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# Every dependency ships manylinux wheels (msgspec, PyYAML), so no compiler is needed.
COPY pyproject.toml README.md /src/
COPY extender/ /src/extender/
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir /src

# ---- runtime: the venv on a clean slim base ----
FROM python:3.11-slim
LABEL org.opencontainers.image.title="extender" \
      org.opencontainers.image.description="A Kubernetes scheduler extender driven by a declarative policy" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/extender-dev/extender" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
COPY --from=build /opt/venv /opt/venv
# HOME=/tmp: nothing may need a writable home on a read-only root filesystem (gunicorn's control
# socket, which would live in $HOME, is disabled in extender/gunicorn_conf.py anyway).
# EXTENDER_HOST=0.0.0.0: the app's own default is loopback; in a container the kubelet and the
# Service reach the pod IP. The second-scheduler sidecar sets it back to 127.0.0.1.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    EXTENDER_HOST=0.0.0.0
# 65532 is the conventional "nonroot" uid/gid (distroless); numeric so that the kubelet can
# verify runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
EXPOSE 8888
ENTRYPOINT ["extender"]
CMD ["serve"]
