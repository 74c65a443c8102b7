# The app image for docker-compose.yml: the web process, the Celery worker and beat all run it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# WeasyPrint's libraries and a font, so that PDF reports render (the list scripts/install-system-packages.sh
# gives the tests); nothing else from Debian.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 libfontconfig1 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md manage.py ./
COPY partnership partnership
COPY provisions provisions
COPY templates templates
COPY static static
RUN pip install --no-cache-dir . \
    && SECRET_KEY=build-only python manage.py collectstatic --noinput
# Background exports are written here (EXPORT_DIR): docker-compose.yml mounts one volume there for
# the web processes, the worker that writes them and beat that removes them.
RUN useradd --system --uid 1000 tracker \
    && mkdir -p /app/var/exports && chown tracker /app/var/exports
USER tracker
EXPOSE 8000
# With DEBUG off the app requires HTTPS (redirect, HSTS, secure cookies): behind a TLS proxy set
# BEHIND_TLS_PROXY=true, or ALLOW_PLAIN_HTTP=true on a trusted network (docker-compose.yml does).
# Probes: /healthz (alive) and /readyz (database, migrations, broker, cache), outside sign-in.
CMD ["gunicorn", "partnership.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
