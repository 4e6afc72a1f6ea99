# The controller image: `engine run` on Python 3.11, as a non-root user, with nothing else in it.
#
# Build and push from the repository root (any builder that reads a Dockerfile works: docker,
# buildah, kaniko):
#   docker build -t <registry>/<name>:<tag> .
#   docker push <registry>/<name>:<tag>
# then install the chart with `--set image=<registry>/<name>:<tag>`.
#
# Two stages: the first builds the package and its dependencies into a virtual environment (pip and
# its build backend stay there); the second copies only that environment onto a fresh slim image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/agent-stack
WORKDIR /src
# Exactly what the wheel is built from (pyproject.toml packs policies/ and schema/ into it).
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY policies ./policies
COPY schema ./schema
# The runtime dependencies only (no [dev] extra). pip compiles the bytecode now, which matters
# because the container's root filesystem is read-only at run time.
RUN /opt/agent-stack/bin/pip install .

FROM python:3.11-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="agent-stack-policy controller" \
      org.opencontainers.image.description="Policy-driven Buildkite agent stack for Kubernetes" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /opt/agent-stack /opt/agent-stack
# HOME=/tmp: the only writable place when the chart mounts an emptyDir there.
ENV PATH=/opt/agent-stack/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A numeric uid:gid with no passwd entry, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# Exec form: the process is PID 1 and gets SIGTERM directly; no shell involved.
ENTRYPOINT ["engine"]
CMD ["run"]
