# cdshooks: the service under gunicorn, as a non-root user, with SQLite in a writable volume by
# default (set CDSHOOKS_DATABASE_URL to PostgreSQL for several replicas: see docs/deploy.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 cdshooks
WORKDIR /app

# The exact runtime versions (constraints.txt, `make constraints`) in a layer of their own, then
# the package itself within them; `pip check` fails the build on an inconsistent set.
COPY constraints.txt ./
RUN pip install --requirement constraints.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --constraint constraints.txt . && pip check

# The data, checked now: a broken policy, mapping, value set or policy test fails the build, not a call.
COPY policies ./policies
COPY mappings ./mappings
COPY valuesets ./valuesets
ENV CDSHOOKS_POLICIES=/app/policies \
    CDSHOOKS_MAPPINGS=/app/mappings
RUN cdshooks check && cdshooks test

RUN mkdir -p /app/var && chown cdshooks:cdshooks /app/var
VOLUME ["/app/var"]
USER cdshooks

# `cdshooks serve` binds CDSHOOKS_HOST:CDSHOOKS_PORT and `cdshooks health` probes the same
# CDSHOOKS_PORT, so `docker run -e CDSHOOKS_PORT=9000` moves both (change the port with the
# variable, not with `serve --port`). `--build-arg PORT=…` changes the default and EXPOSE.
ARG PORT=8000
ENV CDSHOOKS_DATABASE_URL=sqlite:////app/var/cdshooks.sqlite3 \
    CDSHOOKS_HOST=0.0.0.0 \
    CDSHOOKS_PORT=${PORT} \
    CDSHOOKS_WORKERS=2
EXPOSE ${PORT}
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 CMD ["cdshooks", "health"]
CMD ["cdshooks", "serve"]
