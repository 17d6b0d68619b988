# The gateway listener only (`python -m gateway_listener`); the function app is zip-deployed.
# Build: docker build -t discord-bot-listener .   (or in Azure: az acr build, docs/deploy.md)
# No secrets at build time: the token and keys arrive as environment variables at run time.

FROM python:3.13.9-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements-listener.txt /tmp/requirements-listener.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements-listener.txt

FROM python:3.13.9-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LISTENER_HEALTH_HOST=0.0.0.0 \
    LISTENER_HEALTH_PORT=8080
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin listener
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Only what the listener imports (.dockerignore admits nothing else).
COPY shared/ shared/
COPY gateway_listener/ gateway_listener/
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['LISTENER_HEALTH_PORT'], timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway_listener"]
