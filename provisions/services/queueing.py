"""Queuing Celery tasks from services, by name: tasks import the services they run, services never
import tasks (one direction, no cycle). `current_app.tasks[name].delay()` still runs the task in
process when tasks are eager (no broker); `send_task` would not."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction

RUN_REQUESTED_SCANS = "provisions.tasks.run_requested_scans"
DELIVER_WEBHOOK = "provisions.tasks.deliver_webhook"


def task_queue(name: str, *args: Any) -> None:
    """Queue the task now (a broker error propagates to the caller)."""
    current_app.tasks[name].delay(*args)


def task_queue_on_commit(name: str, *args: Any) -> None:
    """Queue the task once the current transaction commits. A broker error is logged, not raised:
    the write has committed, and the outbox row it wrote lets the periodic job queue it later."""

    def queue() -> None:  # a function, not a partial: Django names it when it logs a failure
        task_queue(name, *args)

    transaction.on_commit(queue, robust=True)
