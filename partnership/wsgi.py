from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "partnership.settings")
application = get_wsgi_application()

# Read the API schema now, which the API checks query parameters against, rather than on the first
# API request of each process (0.8 s).
from provisions.api.queries import operations  # noqa: E402

operations()

# Without a broker, the periodic jobs (webhook retries among them) run in this process.
from partnership.periodic import periodic_jobs_start_in_process  # noqa: E402

periodic_jobs_start_in_process()
