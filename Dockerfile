# syntax=docker/dockerfile:1
# incident-router container image.
#   docker build -t incident-router:dev .
#   docker run --rm -p 8080:8080 -v ir-data:/var/lib/incident-router incident-router:dev
# Stage 1 builds wheels for the router (with the Kafka extra) and all its dependencies, at the
# versions pinned in constraints.txt; stage 2 installs only those wheels into a slim runtime,
# so no compiler, pip cache or source tree ends up in the image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY router ./router
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt '.[kafka]'

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid "${UID}" router \
 && useradd --system --uid "${UID}" --gid router --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin router
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl
# Shipped rules live outside /etc so a ConfigMap mounted on /etc/incident-router does not
# hide them; the default config below points at them.
COPY rules/ /usr/share/incident-router/rules/
COPY deploy/docker/router.yaml /etc/incident-router/router.yaml
# The only writable path the router needs (embedded backend: SQLite + WAL). Everything else
# can be read-only (Kubernetes: readOnlyRootFilesystem: true).
RUN mkdir -p /var/lib/incident-router && chown "${UID}:${UID}" /var/lib/incident-router
VOLUME ["/var/lib/incident-router"]
WORKDIR /var/lib/incident-router
USER ${UID}:${UID}
EXPOSE 8080
# No curl in the slim image: the interpreter does the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["incident-router"]
CMD ["serve", "--config", "/etc/incident-router/router.yaml"]
