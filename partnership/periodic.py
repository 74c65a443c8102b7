"""The periodic jobs (settings.CELERY_BEAT_SCHEDULE) in the web process, for the embedded default.

With a broker, `celery beat` runs them and workers do the work. Without one (tasks in process), nothing
else would: webhook retries, the outbox of scan requests, the nightly scan, the digests and the export
purge would wait for a beat that never comes. So a process serving the app starts Celery's own beat in a
thread, and the tasks it sends run in that thread. Meant for one process (`runserver`, or gunicorn
with one worker); with more, each runs the jobs, which the jobs tolerate (each is safe to run twice).
PERIODIC_JOBS_IN_PROCESS turns it off.
"""

from __future__ import annotations

import logging
import threading

from celery import beat
from django.conf import settings

from partnership.celery import app

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_started: list[threading.Thread] = []


def periodic_jobs_start_in_process() -> threading.Thread | None:
    """Start the in-process beat once per process, when tasks run in process; the thread or None."""
    if not (settings.CELERY_TASK_ALWAYS_EAGER and settings.PERIODIC_JOBS_IN_PROCESS):
        return None
    with _lock:
        if not _started:
            # The plain scheduler keeps its state in memory: no schedule file to write.
            service = beat.Service(app, max_interval=5, scheduler_cls=beat.Scheduler)
            thread = threading.Thread(target=service.start, name="beat", daemon=True)
            thread.start()
            _started.append(thread)
            logger.info(
                "Periodic jobs run in this process (no broker): %s", ", ".join(settings.CELERY_BEAT_SCHEDULE)
            )
        return _started[0]
