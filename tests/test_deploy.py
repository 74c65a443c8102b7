"""Production as deployed: `check --deploy --fail-level WARNING` passes with DEBUG off and only the required
variables set, HTTPS is required by default, and running without it is a setting someone chose; the
container image can render PDFs and docker-compose.yml checks the web process's health."""

from __future__ import annotations

import secrets

import pytest
import yaml
from django.conf import settings

from tests.test_settings import start

REQUIRED = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "DATABASE_URL": "postgres://tracker:tracker@127.0.0.1:5432/tracker",  # not connected to by the check
    "ALLOWED_HOSTS": "tracker.example.org",
}
SECURITY = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
)


@pytest.mark.parametrize(
    "choice",
    [
        pytest.param({}, id="only the required variables"),
        pytest.param({"BEHIND_TLS_PROXY": "true"}, id="behind a TLS proxy"),
        pytest.param({"ALLOW_PLAIN_HTTP": "true"}, id="plain HTTP on a trusted network"),
    ],
)
def test_the_deployment_checks_pass_with_warnings_as_failures(choice: dict[str, str]) -> None:
    result = start({**REQUIRED, **choice}, "manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_with_debug_off_https_is_required_by_default() -> None:
    result = start(REQUIRED, "-c", SECURITY)

    assert result.stdout.split() == ["True", "31536000", "True", "True"], result.stderr


def test_plain_http_is_a_setting_someone_chose() -> None:
    result = start({**REQUIRED, "ALLOW_PLAIN_HTTP": "true"}, "-c", SECURITY)

    assert result.stdout.split() == ["False", "0", "False", "False"], result.stderr


def test_the_image_installs_what_weasyprint_needs_as_the_tests_do() -> None:
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    script = (settings.BASE_DIR / "scripts" / "install-system-packages.sh").read_text()
    weasyprint = next(line for line in script.splitlines() if "# WeasyPrint" in line).split("#")[0].split()

    assert weasyprint and all(package in dockerfile for package in weasyprint)


def test_compose_checks_the_web_processs_health_and_starts_it_after_its_services() -> None:
    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    web = compose["services"]["web"]

    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert web["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert web["environment"]["ALLOW_PLAIN_HTTP"].startswith("${ALLOW_PLAIN_HTTP:-true")
