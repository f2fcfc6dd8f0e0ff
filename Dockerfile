# cdshooks: the service under gunicorn, as a non-root user, with SQLite in a writable volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 cdshooks
WORKDIR /app

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .

COPY policies ./policies
COPY mappings ./mappings
RUN mkdir -p /app/var && chown cdshooks:cdshooks /app/var
VOLUME ["/app/var"]

USER cdshooks
ENV CDSHOOKS_POLICIES=/app/policies \
    CDSHOOKS_MAPPINGS=/app/mappings \
    CDSHOOKS_DATABASE_URL=sqlite:////app/var/cdshooks.sqlite3

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["cdshooks", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
