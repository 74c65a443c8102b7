"""Settings, read from the environment.

Defaults run on one machine with nothing installed: SQLite in the project folder and
Celery tasks run in process. Production sets DEBUG off, SECRET_KEY, DATABASE_URL and
CELERY_BROKER_URL. A bad value stops start-up with a message naming the variable.
"""

from __future__ import annotations

import datetime
import os
import zoneinfo
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected true or false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_database(name: str, default: str) -> dict[str, object]:
    raw = os.environ.get(name, default)
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"{name}: expected sqlite:///PATH or postgres://USER@HOST:PORT/NAME, got {raw!r}"
        )
    try:
        config: dict[str, object] = environ.Env.db_url_config(raw)
    except Exception as error:  # django-environ raises several kinds for a malformed URL
        raise ImproperlyConfigured(f"{name}: cannot parse {raw!r} ({error})") from error
    if not config.get("NAME") or config.get("NAME") == ":memory:":
        raise ImproperlyConfigured(f"{name}: no database name in {raw!r}")
    return config


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY: required when DEBUG is off (set DEBUG=true for local use)")
    SECRET_KEY = "insecure-local-development-key-do-not-deploy"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "provisions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # RateLimit-Policy and RateLimit on every answer the API throttled.
    "partnership.middleware.rate_limit_headers",
    # A POST sent again with its Idempotency-Key gets the first answer.
    "provisions.api.idempotency.idempotent_posts",
    # Marks every answer the application renders not to be stored by browsers or proxies; outside
    # the next one, which would add no ETag to an answer already marked no-store.
    "partnership.middleware.no_store",
    # ETag on every GET, and 304 for If-None-Match (provision pages set their own: the version).
    "django.middleware.http.ConditionalGetMiddleware",
    # A NUL character in the path or query, or a query that is not UTF-8: a 4xx (JSON under /api/).
    "partnership.input_guard.guard_hostile_input",
    "partnership.middleware.refuse_null_characters",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Ends a session past its absolute lifetime, whatever its activity.
    "partnership.middleware.session_lifetime",
    "django.contrib.messages.middleware.MessageMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "partnership.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "partnership.urls"
WSGI_APPLICATION = "partnership.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "provisions.context_processors.site_header",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Connections are kept a minute: opening one per request (PostgreSQL forks a backend for each) cost
# 8 ms of every API answer, two thirds of a small one (benchmarks/load.py).
DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
# A kept connection (CONN_MAX_AGE) that the database dropped, by a restart, is replaced before a request
# uses it, instead of failing that request (tests/test_faults.py).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that takes connections but does not answer fails a request in 5 s instead of holding
    # its web worker until gunicorn kills it; `?connect_timeout=N` in DATABASE_URL overrides it.
    _url_options = DATABASES["default"].get("OPTIONS")
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": 5,
        **(_url_options if isinstance(_url_options, dict) else {}),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "provisions.User"

# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "Europe/London")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"TIME_ZONE: unknown time zone {TIME_ZONE!r}") from None
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# The "why" of an audit entry is free text (a status note can be long): a text column, not 100 characters.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "provisions:overview"
LOGOUT_REDIRECT_URL = "login"

# HTTPS. With DEBUG off it is required by default: HTTP redirects to HTTPS, HSTS for a year, cookies
# only over HTTPS. Behind a TLS-terminating proxy that sets X-Forwarded-Proto, say BEHIND_TLS_PROXY
# (only then: a client could forge the header); on a trusted network without HTTPS (docker-compose.yml
# on one machine, the tests' servers), say ALLOW_PLAIN_HTTP, which also accepts `check --deploy`'s
# warnings about exactly those settings.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
ALLOW_PLAIN_HTTP = env_bool("ALLOW_PLAIN_HTTP", False)
_HTTPS_REQUIRED = not DEBUG and not ALLOW_PLAIN_HTTP
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", _HTTPS_REQUIRED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS_REQUIRED)
# Health probes come from inside the network (an orchestrator, docker compose) over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS_REQUIRED else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
# Only a declaration: a site is on the browsers' preload list once its registrable domain is submitted.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", SECURE_HSTS_INCLUDE_SUBDOMAINS)
if ALLOW_PLAIN_HTTP:
    SILENCED_SYSTEM_CHECKS = [
        "security.W004",  # no HSTS
        "security.W008",  # no redirect to HTTPS
        "security.W012",  # session cookie over HTTP
        "security.W016",  # CSRF cookie over HTTP
    ]

# Sessions end after SESSION_IDLE_MINUTES without a request (the cookie and the stored session expire
# then, renewed by every request) and SESSION_MAX_HOURS after signing in, however active
# (partnership.middleware.session_lifetime).
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30, minimum=1)
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = False  # partnership.middleware.session_lifetime renews it, once a minute

# Sign-in throttling (django-axes), on the site's and the admin's sign-in pages: after
# SIGNIN_FAILURE_LIMIT failures in a row for one username, or from one address, signing in is refused,
# the right password included, for SIGNIN_LOCKOUT_MINUTES. Administrators unlock earlier with
# `manage.py axes_reset_username NAME` (or axes_reset_ip, axes_reset), or a superuser in the admin.
SIGNIN_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 10, minimum=1)
SIGNIN_LOCKOUT_MINUTES = env_int("SIGNIN_LOCKOUT_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = SIGNIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = datetime.timedelta(minutes=SIGNIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own, not the pair
AXES_RESET_ON_SUCCESS = True  # "in a row": signing in clears the count
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lockout ends when the page says it does
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "partnership.middleware.client_address"
AXES_VERBOSE = False
# API bearer tokens: after this many unknown, expired or revoked tokens from one address, that address
# gets 429 for SIGNIN_LOCKOUT_MINUTES (counted in the cache: across processes with CACHE_URL).
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20, minimum=1)
# No token lives longer: one asked without an expiry gets this, one asked longer is refused.
API_TOKEN_MAX_LIFETIME_DAYS = env_int("API_TOKEN_MAX_LIFETIME_DAYS", 365, minimum=1)
# A token made without an expiry gets this many days (at most the longest allowed).
API_TOKEN_DEFAULT_LIFETIME_DAYS = env_int("API_TOKEN_DEFAULT_LIFETIME_DAYS", 90, minimum=1)
# Usable (not revoked, not expired) tokens a user may hold at once.
API_TOKENS_PER_USER = env_int("API_TOKENS_PER_USER", 10, minimum=1)
# How long a POST's Idempotency-Key answers a repeat of it with the first answer.
IDEMPOTENCY_KEY_HOURS = env_int("IDEMPOTENCY_KEY_HOURS", 24, minimum=1)
# How long the events feed keeps an event (beat forgets older ones daily); a reader whose cursor is
# older gets 410 and copies the lists again. Longer than a webhook's retries (about a day).
EVENTS_KEPT_DAYS = env_int("EVENTS_KEPT_DAYS", 90, minimum=2)
# Answers about a past day (the overview as of a date) are kept in the cache until a write reaches
# back to that day (provisions.services.past), and at most this long.
PAST_ANSWERS_KEPT_SECONDS = env_int("PAST_ANSWERS_KEPT_SECONDS", 24 * 3600)
# A full gap scan evaluates and reconciles this many subjects (provisions and capabilities) per
# transaction: a million provisions neither hold one transaction for minutes nor one evaluation in memory.
GAP_SCAN_BATCH_SUBJECTS = env_int("GAP_SCAN_BATCH_SUBJECTS", 50_000, minimum=1)

# Password reset by email, only when an SMTP server is configured; otherwise its pages answer 404 and
# an administrator sets a new password in the admin.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "tracker@localhost")
PASSWORD_RESET_ENABLED = bool(EMAIL_HOST)
# Without an SMTP server (development), emails (the watch list's daily digest) are printed.
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
PASSWORD_RESET_TIMEOUT = 3600  # a reset link works for an hour

# The cache holds the API's per-token throttle counts: shared by every web process only in Redis.
# Unset, each process counts for itself (fine for one process, or tests).
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"CACHE_URL: expected redis://HOST:PORT/DB, got {CACHE_URL!r}")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# A strict Content Security Policy (django-csp): our pages run no script at all and load nothing from
# elsewhere; the charts are inline SVG. The admin may use inline style (partnership/middleware.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "provisions.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["provisions.api.conventions.HasRole"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "provisions.api.conventions.RankedOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "provisions.api.conventions.Pagination",
    # Errors as RFC 9457 problem details for a caller that asks for them (provisions/api/errors.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "provisions.api.conventions.ProblemAwareNegotiation",
    "DEFAULT_SCHEMA_CLASS": "provisions.api.schema.VerbAutoSchema",
    "EXCEPTION_HANDLER": "provisions.api.errors.api_exception_handler",
    # Request bodies are JSON only (form and multipart cannot say null: a generated client that chose
    # them could not clear a date); JSON refusing a body nested deeper than any the API reads (a 400).
    "DEFAULT_PARSER_CLASSES": ["provisions.api.conventions.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["provisions.api.conventions.PerCallerThrottle"],
    "DEFAULT_THROTTLE_RATES": {"caller": env_str("API_THROTTLE_RATE", "1200/minute")},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Security partnership tracker API",
    "DESCRIPTION": "The UK–EU security partnership, provision by provision, and its operational gaps.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Headers middleware adds (RateLimit, ETag, If-None-Match): provisions/api/schema.py.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "provisions.api.schema.document_http_headers",
    ],
    # What webhook receivers are sent, one entry per event (provisions/api/webhooks.py).
    "WEBHOOKS": [
        f"provisions.api.webhooks.{name}_WEBHOOK"
        for name in (
            "PROVISION_CHANGED",
            "STATUS_CHANGED",
            "PROVISION_WITHDRAWN",
            "GAP_OPENED",
            "GAP_UPDATED",
            "GAP_ESCALATED",
            "GAP_RESOLVED",
            "CAPABILITY_CHANGED",
            "CAPABILITY_DELETED",
            "AIM_CHANGED",
        )
    ],
    "ENUM_NAME_OVERRIDES": {
        "LevelEnum": "provisions.models.Level",
        "StatusEnum": "provisions.models.Status",
        "MarkingEnum": "provisions.models.Marking",
        "GapKindEnum": "provisions.models.GapKind",
        "WebhookEventEnum": "provisions.models.WebhookEvent",
        "WebhookDeliveryStateEnum": "provisions.models.WebhookDelivery.State",
    },
}

# The gap rules' thresholds (DESIGN.md, "Coverage and gap rules").
SECURED_STATUS = env_str("SECURED_STATUS", "agreed")
WARNING_DAYS = env_int("WARNING_DAYS", 180)
URGENT_DAYS = env_int("URGENT_DAYS", 30)
STALL_DAYS = env_int("STALL_DAYS", 60)
_LADDER = (
    "identified",
    "scoping",
    "proposed",
    "under_negotiation",
    "agreed_in_principle",
    "agreed",
    "signed",
    "in_force",
)
if SECURED_STATUS not in _LADDER:
    raise ImproperlyConfigured(
        f"SECURED_STATUS: expected one of {', '.join(_LADDER)}, got {SECURED_STATUS!r}"
    )
if URGENT_DAYS > WARNING_DAYS:
    raise ImproperlyConfigured(f"URGENT_DAYS ({URGENT_DAYS}) must not exceed WARNING_DAYS ({WARNING_DAYS})")

# Celery. Without a broker, tasks run in process so the app works with nothing installed.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
if CELERY_BROKER_URL and not CELERY_BROKER_URL.startswith(("redis://", "rediss://", "memory://")):
    raise ImproperlyConfigured(f"CELERY_BROKER_URL: expected redis://HOST:PORT/DB, got {CELERY_BROKER_URL!r}")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# Without a broker, a process serving the app runs the periodic jobs itself (partnership/periodic.py).
PERIODIC_JOBS_IN_PROCESS = env_bool("PERIODIC_JOBS_IN_PROCESS", True)
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
# A worker killed mid-task gives the task back to the broker; tasks are idempotent (FIELD-NOTES.md).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A hung broker (it takes connections, never answers) fails a publish in about 6 s, three waits of
# socket_timeout (with 5 s and two publish retries it took 20 s: tests/test_faults.py bounds it at 10 s).
# The outbox sends it again later.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
    "max_retries": 2,
    "visibility_timeout": 3600,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # In process (no broker), a line per task run is noise; a worker logs its own.
    "loggers": {
        "celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else "INFO"},
        # The in-process beat (no broker) sends webhook retries every 5 s: a line each would drown the rest.
        "celery.beat": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else "INFO"},
        # WeasyPrint logs every layout step at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}

CELERY_BEAT_SCHEDULE = {
    # The watch list's daily email (at most one a day a user; the email backend: EMAIL_* settings).
    "daily-digest": {
        "task": "provisions.tasks.send_digests",
        "schedule": crontab(hour=env_int("DIGEST_HOUR", 7), minute=0),
    },
    "nightly-gap-scan": {
        "task": "provisions.tasks.scan_all_gaps",
        "schedule": crontab(hour=env_int("NIGHTLY_SCAN_HOUR", 2), minute=0),
    },
    # Sends again the scan requests whose task never reached the broker (an outage at commit time).
    "pending-scan-requests": {"task": "provisions.tasks.run_requested_scans", "schedule": 60.0},
    # Removes the background exports whose time is up (EXPORT_KEEP_HOURS).
    "purge-exports": {"task": "provisions.tasks.purge_exports", "schedule": 3600.0},
    # Forgets the Idempotency-Keys whose day is over.
    "purge-idempotency-keys": {"task": "provisions.tasks.purge_idempotency_keys", "schedule": 3600.0},
    # Forgets the feed's events older than EVENTS_KEPT_DAYS.
    "purge-events": {"task": "provisions.tasks.purge_events", "schedule": crontab(hour=3, minute=30)},
    # Sends the webhook deliveries whose next attempt is due (the retry schedule is kept on each
    # delivery, whatever the broker), and those whose task was lost the same way.
    "due-webhook-deliveries": {"task": "provisions.tasks.send_due_webhooks", "schedule": 5.0},
}

# Exports: above these many rows a report is prepared in the background by a Celery worker (PDF is
# slower to lay out than CSV or Excel); the files are kept this long under EXPORT_DIR, then removed.
EXPORT_ONLINE_MAX_PDF_ROWS = env_int("EXPORT_ONLINE_MAX_PDF_ROWS", 2000, minimum=0)
EXPORT_ONLINE_MAX_ROWS = env_int("EXPORT_ONLINE_MAX_ROWS", 50000, minimum=0)
EXPORT_KEEP_HOURS = env_int("EXPORT_KEEP_HOURS", 24, minimum=1)
EXPORT_DIR = Path(env_str("EXPORT_DIR", str(BASE_DIR / "var" / "exports")))

# Webhooks go only to hosts on the public internet unless this is set (a receiver on the same
# network, or tests): an administrator's typo must not make the tracker POST to its own services.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)

# The largest partnership file import_partnership reads (bytes); a larger one is refused unread.
PARTNERSHIP_FILE_MAX_BYTES = env_int("PARTNERSHIP_FILE_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
