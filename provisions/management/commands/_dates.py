from __future__ import annotations

import argparse
import datetime

from provisions.rules import parse_as_of


def iso_date(value: str) -> datetime.date:
    """argparse type for --as-of: an ISO 8601 calendar date the rules accept."""
    try:
        return parse_as_of(value)
    except ValueError as invalid:
        raise argparse.ArgumentTypeError(str(invalid)) from None
