# Countersign's worker and API: one image, two commands.
#   docker build -t countersign .                          # or with tracing:
#   docker build -t countersign --build-arg EXTRAS='[otel]' .
# The API is the default command; the worker runs `python -m worker`.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the package needs: tests, benchmarks and docs stay out (.dockerignore).
COPY pyproject.toml README.md worker.py ./
COPY countersign ./countersign
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY cli ./cli
ARG EXTRAS=""
# A regular (not editable) install: the runtime stage needs /opt/venv only.
RUN /opt/venv/bin/pip install ".${EXTRAS}"

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COUNTERSIGN_API_HOST=0.0.0.0 \
    COUNTERSIGN_API_PORT=7777 \
    COUNTERSIGN_LOG_FORMAT=json \
    COUNTERSIGN_DEMO_DB=/data/demo.sqlite3 \
    COUNTERSIGN_API_KEYS_FILE=/keys/api_keys.json
# /keys holds the API keys file: created here, owned by the runtime user, so a
# volume mounted there (docker compose) starts out writable for `countersign keys`.
RUN useradd --system --uid 10001 --home-dir /data --create-home countersign \
    && install -d -o countersign -g countersign /keys
COPY --from=build /opt/venv /opt/venv
USER countersign
WORKDIR /data
EXPOSE 7777
# SIGTERM (docker stop) lets the API answer what it holds and the worker drain.
STOPSIGNAL SIGTERM
# Liveness of the default command (the API); compose and Kubernetes define
# their own checks per service (readiness: /ready).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7777/health', timeout=4)"]
CMD ["python", "-m", "api"]
