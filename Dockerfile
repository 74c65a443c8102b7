# The app image for docker-compose.yml: the web process, the Celery worker and beat all run it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY partnership partnership
COPY provisions provisions
COPY templates templates
COPY static static
RUN pip install --no-cache-dir . \
    && SECRET_KEY=build-only python manage.py collectstatic --noinput
RUN useradd --system --uid 1000 tracker
USER tracker
EXPOSE 8000
CMD ["gunicorn", "partnership.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
