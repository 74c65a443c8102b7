"""Settings come from the environment; a bad value stops start-up with a message naming the variable.

Each case starts a fresh interpreter with a controlled environment (nothing inherited from the shell
running the tests), since settings are read once, at import.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

PROBE = (
    "import django; django.setup(); from django.conf import settings; "
    "print('eager' if settings.CELERY_TASK_ALWAYS_EAGER else 'broker')"
)
GOOD_ENVIRONMENT = {"SECRET_KEY": "test-only-not-a-secret"}


def start(overrides: dict[str, str | None], *command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` (by default: load settings and apps) with the good environment plus `overrides`.

    An override of None removes the variable.
    """
    environment = {
        "PATH": os.environ.get("PATH", os.defpath),
        "DJANGO_SETTINGS_MODULE": "partnership.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
        **GOOD_ENVIRONMENT,
    }
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, *(command or ("-c", PROBE))],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The exception's own message: the traceback above it quotes settings.py, which names every variable."""
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.parametrize(
    ("overrides", "variable", "shown_value"),
    [
        pytest.param({"DATABASE_URL": "mysql://x"}, "DATABASE_URL", "mysql://x", id="unsupported database"),
        pytest.param(
            {"DATABASE_URL": "postgres://"}, "DATABASE_URL", "postgres://", id="database without a name"
        ),
        pytest.param({"DATABASE_URL": "not a url"}, "DATABASE_URL", "not a url", id="database not a url"),
        pytest.param({"DATABASE_URL": "sqlite://"}, "DATABASE_URL", "sqlite://", id="in-memory sqlite"),
        pytest.param({"SECRET_KEY": None}, "SECRET_KEY", None, id="DEBUG off without SECRET_KEY"),
        pytest.param(
            {"SECRET_KEY": "", "DEBUG": "false"}, "SECRET_KEY", None, id="DEBUG false, empty SECRET_KEY"
        ),
        pytest.param({"DEBUG": "maybe"}, "DEBUG", "maybe", id="DEBUG not a boolean"),
        pytest.param({"CACHE_URL": "memcached://x"}, "CACHE_URL", "memcached://x", id="cache not redis"),
        pytest.param(
            {"SECURE_HSTS_SECONDS": "a year"}, "SECURE_HSTS_SECONDS", "a year", id="HSTS not a number"
        ),
        pytest.param({"WARNING_DAYS": "abc"}, "WARNING_DAYS", "abc", id="WARNING_DAYS not a number"),
        pytest.param({"STALL_DAYS": "-5"}, "STALL_DAYS", "-5", id="STALL_DAYS negative"),
        pytest.param({"SECURED_STATUS": "bogus"}, "SECURED_STATUS", "bogus", id="SECURED_STATUS unknown"),
        pytest.param(
            {"SECURED_STATUS": "suspended"}, "SECURED_STATUS", "suspended", id="SECURED_STATUS off ladder"
        ),
        pytest.param({"TIME_ZONE": "Mars/Base"}, "TIME_ZONE", "Mars/Base", id="TIME_ZONE unknown"),
        pytest.param(
            {"ALLOW_PLAIN_HTTP": "sometimes"}, "ALLOW_PLAIN_HTTP", "sometimes", id="plain HTTP not a boolean"
        ),
        pytest.param({"SIGNIN_FAILURE_LIMIT": "0"}, "SIGNIN_FAILURE_LIMIT", "0", id="sign-in limit zero"),
        pytest.param(
            {"SESSION_IDLE_MINUTES": "soon"}, "SESSION_IDLE_MINUTES", "soon", id="idle not a number"
        ),
        pytest.param(
            {"API_TOKEN_MAX_LIFETIME_DAYS": "0"}, "API_TOKEN_MAX_LIFETIME_DAYS", "0", id="token lifetime zero"
        ),
        pytest.param(
            {"CELERY_BROKER_URL": "http://x"}, "CELERY_BROKER_URL", "http://x", id="broker not redis"
        ),
    ],
)
def test_a_bad_environment_stops_start_up_naming_the_variable(
    overrides: dict[str, str | None], variable: str, shown_value: str | None
) -> None:
    result = start(overrides)

    assert result.returncode != 0, result.stdout
    message = error_line(result)
    assert "ImproperlyConfigured" in message, result.stderr
    assert f"{variable}:" in message, result.stderr
    if shown_value is not None:
        assert shown_value in message, result.stderr


def test_urgent_days_beyond_warning_days_stops_start_up_naming_both() -> None:
    result = start({"URGENT_DAYS": "90", "WARNING_DAYS": "60"})

    assert result.returncode != 0
    message = error_line(result)
    assert "URGENT_DAYS" in message and "WARNING_DAYS" in message, result.stderr


def test_a_good_environment_starts() -> None:
    result = start({})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "eager"


def test_a_good_environment_passes_the_system_checks() -> None:
    result = start({}, "manage.py", "check")

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_local_use_with_debug_on_needs_no_secret_key() -> None:
    result = start({"SECRET_KEY": None, "DEBUG": "true"})

    assert result.returncode == 0, result.stderr


def test_without_a_broker_tasks_run_in_process() -> None:
    result = start({"CELERY_BROKER_URL": None})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "eager"


def test_with_a_redis_broker_tasks_are_queued() -> None:
    result = start({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "broker"


def test_a_redis_cache_and_a_tls_proxy_are_configured_from_the_environment() -> None:
    probe = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CACHES['default']['BACKEND'], settings.CACHES['default'].get('LOCATION'), "
        "settings.SECURE_PROXY_SSL_HEADER, settings.SECURE_HSTS_SECONDS)"
    )
    configured = start(
        {
            "CACHE_URL": "redis://127.0.0.1:6379/1",
            "BEHIND_TLS_PROXY": "true",
            "SECURE_HSTS_SECONDS": "31536000",
        },
        "-c",
        probe,
    )
    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.split() == [
        "django.core.cache.backends.redis.RedisCache",
        "redis://127.0.0.1:6379/1",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
        "31536000",
    ]
    default = start(
        {}, "-c", probe
    )  # DEBUG off: HSTS for a year unless told otherwise (tests/test_deploy.py)
    assert default.stdout.split() == [
        "django.core.cache.backends.locmem.LocMemCache",
        "None",
        "None",
        "31536000",
    ]
