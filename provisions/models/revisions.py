"""How often the record of each past day has been written to: what keeps answers about a past day
(provisions.services.past) exactly as long as they are true."""

from __future__ import annotations

from django.db import models


class RecordRevision(models.Model):
    """Writes that reach back to `day`: a write dated on a day (a status change, a dated position or
    value, a link from a day) counts on that day's row; any other write (an edit of a row in place, a
    deletion, an undated row, reference data, an import) on the first row, `datetime.date.min`. The record
    as it stood on day D is unchanged while the sum of the rows on or before D is."""

    day = models.DateField(unique=True)
    revision = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.day}: {self.revision}"
