# driftwarden's container image: slim, non-root, health-checked on /livez.
#
#   docker build -t driftwarden .
#   docker run --rm -p 127.0.0.1:9108:9108 \
#     -v "$PWD/driftwarden.yaml:/etc/driftwarden/driftwarden.yaml:ro" driftwarden
#
# A conventional two-stage build: the first stage installs the package (with the PostgreSQL
# driver) into a virtual environment, the second copies only that environment.
# Both stages use one base image, pinned by digest (python:3.12-slim, Python 3.12.13, as
# recorded in docker-library/repo-info); change the tag and the digest together.
ARG PYTHON_IMAGE=python:3.12-slim@sha256:229a2c5bfa27522db7815ea81f9bed70af17ccb9de9fc7ad142b1877b5830d36

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/driftwarden
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY monitor/ monitor/
COPY detectors/ detectors/
COPY alerts/ alerts/
RUN /opt/driftwarden/bin/pip install ".[postgres]"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="driftwarden" \
      org.opencontainers.image.description="Watches machine-learning models in production" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 driftwarden \
 && useradd --system --uid 10001 --gid driftwarden --no-create-home \
        --home-dir /var/lib/driftwarden --shell /usr/sbin/nologin driftwarden \
 && mkdir -p /etc/driftwarden /var/lib/driftwarden/reference \
 && chown -R driftwarden:driftwarden /var/lib/driftwarden
COPY --from=build /opt/driftwarden /opt/driftwarden
# One BLAS thread: the daemon's matrix products (multivariate drift) are small per batch, and
# OpenBLAS's extra threads spent 3x the CPU on them for no gain (bench/reconstruction_fold.py).
ENV PATH=/opt/driftwarden/bin:$PATH \
    OPENBLAS_NUM_THREADS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DRIFTWARDEN_LIVEZ_URL=http://127.0.0.1:9108/livez
USER 10001:10001
WORKDIR /var/lib/driftwarden
EXPOSE 9108
# Plain HTTP on loopback; with http.tls set, point DRIFTWARDEN_LIVEZ_URL at https://...
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, ssl, sys, urllib.request; sys.exit(urllib.request.urlopen(os.environ['DRIFTWARDEN_LIVEZ_URL'], timeout=4, context=ssl._create_unverified_context()).status != 200)"]
ENTRYPOINT ["driftwarden"]
CMD ["run", "--config", "/etc/driftwarden/driftwarden.yaml", "--log-format", "json"]
