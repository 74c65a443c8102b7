from __future__ import annotations

import argparse
import datetime


def iso_date(value: str) -> datetime.date:
    """argparse type for --as-of: an ISO 8601 calendar date."""
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {value!r}") from None
